"""The served model: contract, feature transform, scorers, calibration, explanations, bundle.

What training writes and every server reads. Depends on `churn_core` and nothing
else of ours (an import contract in `make lint` keeps it so).
"""
