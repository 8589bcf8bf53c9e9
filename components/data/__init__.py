"""Data stages: ingest, validate, preprocess, fit the feature transform."""
