"""Training stages: fit the three candidates with repeated CV, then evaluate them."""
