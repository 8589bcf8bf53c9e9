"""The pipeline stages by group (data, training, registry): plain functions, thin KFP wrappers."""
