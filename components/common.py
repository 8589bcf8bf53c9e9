"""What every stage group shares: the components image, artifact I/O, the KFP glue helpers.

The glue helpers take KFP artifact objects (anything with ``.path``,
``.metadata`` and ``log_metric``) and import no kfp, so they are testable with
stand-ins. `component_logging` is the one place a component (an entry point)
reads the ``CHURN_*`` settings for logging.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from churn_core.config import ChurnConfig
from churn_core.io import write_bytes_atomic
from churn_core.settings import Settings
from churn_model.features import ChurnFeatures

# The one place the components image is named. The tag carries the package
# version (tests check it against pyproject) and the Python version (the KFP
# local runner warns about images whose name does not mention python).
COMPONENTS_IMAGE = "ghcr.io/churn-platform/churn-components:0.1.0-python3.11"


# -- artifacts passed between our own components ---------------------------------------
def config_from_json(text: str) -> ChurnConfig:
    """The configuration as passed between components (JSON of `ChurnConfig`)."""
    from pydantic import ValidationError

    from churn_core.errors import ConfigError

    try:
        return ChurnConfig.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(f"pipeline parameter config_json: {err}") from err


def write_dataset(frame: pd.DataFrame, path: str | Path) -> str:
    """Write a table as Parquet (types and NaN survive exactly), atomically; its sha256."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return write_bytes_atomic(path, buf.getvalue())


def read_dataset(path: str | Path) -> pd.DataFrame:
    """A table written by `write_dataset`."""
    return pd.read_parquet(path)


def read_features(path: str | Path, sha256: str | None = None) -> ChurnFeatures:
    """The features stage's fitted transform; its sha256 checked first when one is known."""
    from churn_components.data.fit_features import load_features

    return load_features(Path(path).read_bytes(), sha256 or None)


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types (numbers, strings, lists, dicts)."""
    return json.loads(json.dumps(obj, default=str))


# -- KFP glue (no kfp import: the artifacts are passed in) -----------------------------
def component_logging() -> Settings:
    """A KFP component's entry: read the CHURN_ settings once, configure logging; the settings."""
    from churn_core.logs import configure_logging
    from churn_core.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    return settings


def annotate(artifact: Any, metadata: Mapping[str, Any]) -> None:
    """Copy a stage's metadata onto a KFP artifact (shown in the UI, passed downstream)."""
    artifact.metadata.update(jsonable(dict(metadata)))


def log_metrics(metrics: Any, metadata: Mapping[str, Any], keys: tuple[str, ...] = ()) -> None:
    """Log the numeric values of a stage's metadata (only `keys` when given) to KFP Metrics."""
    for key in keys or tuple(metadata):
        value = metadata.get(key)
        if isinstance(value, bool | int | float) and value == value:
            metrics.log_metric(key, float(value))
