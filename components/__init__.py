"""The pipeline stages: data contract, feature transform, data and training components."""
