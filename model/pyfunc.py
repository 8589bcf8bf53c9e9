"""The MLflow pyfunc face of a model bundle: `models:/churn@champion` loads and predicts.

Imported only by code that logs or loads the MLflow model (it imports mlflow).
The wrapper holds no model of its own: `load_context` verifies and loads the
bundle shipped as the MLflow model's artifact ``bundle`` with
`churn_model.bundle.load_model`, so MLflow serves exactly the bundle's numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from churn_model.registry import BUNDLE_ARTIFACT


class ChurnBundleModel(PythonModel):
    """Churn probability and decision for a frame of customers."""

    def load_context(self, context: Any) -> None:
        """Verify every file's sha256, then rebuild the bundle's `ChurnModel` from its data."""
        from churn_model.bundle import load_model

        self.model, self.metadata = load_model(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Columns `churn_probability` and `churn` (at the bundle's threshold)."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        p = self.model.predict_proba(frame)
        return pd.DataFrame({"churn_probability": p, "churn": p >= self.model.threshold})
