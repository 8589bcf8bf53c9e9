"""The canary rollout controller (`churn rollout`) and its statistical gates.

Watches and patches KServe InferenceServices, reads Prometheus and the drift
service, decides PASS / FAIL / HOLD / INCONCLUSIVE. Uses `churn_model` and
`churn_core` only, never the training code (import contracts in
`pyproject.toml`, `make lint`).
"""
