"""Serving: KServe predictor and explainer, metrics, `churn serve`."""
