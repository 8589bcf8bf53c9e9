"""The drift and decay service: logger CloudEvents in, windows, detectors, estimates, trigger.

Reads the served model through `churn_model` (its drift reference and
detectors travel in the bundle) and never imports the training code
(`churn_components`, `churn_pipelines`): a retraining run is started through
the pipeline's own entry point, not by importing it. Import contracts in
`pyproject.toml` (`make lint`) keep it so.
"""
