"""Shared core: config, settings, errors, logging, artifact store, model bundle, the churn CLI."""
