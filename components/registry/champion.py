"""The champion for the gate: found by its registry alias, loaded from its bundle, scored.

`assess_champion` answers one of three things, which `select.gate` turns into
a decision:

* ``None``: the registry has no such model or no ``champion`` alias (only
  what the registry says so: MLflow's RESOURCE_DOES_NOT_EXIST or
  INVALID_PARAMETER_VALUE);
* a `ScoredModel`: the champion's bundle, verified and loaded, scored on the
  rows given (this run's held-out split), its F1 at the bundle's served
  threshold, its provenance from the bundle's ``synthetic`` flag;
* an `UnreadableChampion`: anything else (an unreachable registry, a failed
  download, a bundle that fails verification or is of another format, a
  scoring error), naming why. The gate fails the run on it unless the
  operator chose otherwise.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_components.registry.select import ScoredModel, UnreadableChampion, metrics_on_rows
from churn_core.errors import ChurnError, GateError
from churn_model.registry import CHAMPION

logger = logging.getLogger(__name__)

# MLflow error codes that mean "no such registered model / alias": no champion yet.
NO_CHAMPION_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
# What loading a bundle can raise besides our own errors: I/O, bad JSON (ValueError),
# and unpickling a model whose classes this code no longer has.
_LOAD_ERRORS = (ChurnError, OSError, ValueError, EOFError, ImportError, AttributeError)
_SCORE_ERRORS = (ChurnError, ValueError, KeyError, TypeError)


def champion_version(client: Any, name: str) -> str | None:
    """The registry version holding the ``champion`` alias of `name`; None when there is none.

    Raises:
        GateError: the registry could not answer (unreachable, failing): that
            is not "no champion", which would promote anything.
    """
    from mlflow.exceptions import MlflowException

    where = f"registry {client.tracking_uri}"
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as err:
        if err.error_code in NO_CHAMPION_CODES:
            logger.info("%s: no %s for %r yet (%s)", where, CHAMPION, name, err.error_code)
            return None
        raise GateError(f"{where}: cannot read the {CHAMPION} of {name!r}: {err}") from err
    except OSError as err:  # a connection refused or reset below MLflow's own handling
        raise GateError(f"{where}: cannot read the {CHAMPION} of {name!r}: {err}") from err
    return str(version.version)


def load_champion(model_uri: str, tracking_uri: str, dst: str | Path) -> tuple[Any, dict[str, Any]]:
    """Download and load the bundle behind `model_uri`: (ChurnModel, metadata).

    Raises:
        GateError: the download failed, or the bundle fails verification, is
            of another format, or holds no churn model; the message says which.
    """
    from mlflow.exceptions import MlflowException

    from churn_model.bundle import load_model
    from churn_model.model import ChurnModel
    from churn_model.registry import download_bundle

    try:
        local = download_bundle(model_uri, dst, tracking_uri=tracking_uri)
    except (ChurnError, MlflowException, OSError) as err:
        raise GateError(f"cannot download {model_uri}: {err}") from err
    try:
        model, meta = load_model(local)
    except (*_LOAD_ERRORS, pickle.UnpicklingError) as err:
        raise GateError(
            f"the bundle of {model_uri} cannot be loaded: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(model, ChurnModel):
        raise GateError(
            f"the bundle of {model_uri} holds a {type(model).__module__}.{type(model).__name__}, "
            "not a churn model"
        )
    if not isinstance(meta.get("synthetic"), bool):
        raise GateError(
            f"the bundle of {model_uri} does not record whether its data was synthetic "
            f"(metadata 'synthetic' is {meta.get('synthetic')!r})"
        )
    return model, meta


def score_champion(
    model: Any, meta: dict[str, Any], version: str, rows: pd.DataFrame, y: np.ndarray
) -> ScoredModel:
    """The champion scored on `rows` (labels `y`) at the threshold its bundle serves with.

    Raises:
        GateError: the champion could not score these rows.
    """
    threshold = float(meta.get("threshold", model.threshold))  # what the server serves with
    try:
        p = np.asarray(model.predict_proba(rows), dtype=np.float64)
        metrics = metrics_on_rows(y, p, threshold)
    except _SCORE_ERRORS as err:
        raise GateError(
            f"champion v{version} cannot score this run's {len(rows)} held-out rows: "
            f"{type(err).__name__}: {err}"
        ) from err
    return ScoredModel(
        kind=str(meta.get("kind", model.kind)),
        version=version,
        synthetic=bool(meta["synthetic"]),
        threshold=threshold,
        metrics=metrics,
    )


def assess_champion(
    client: Any, name: str, rows: pd.DataFrame, y: np.ndarray
) -> ScoredModel | UnreadableChampion | None:
    """The champion of `name` scored on `rows`, None without one, or why it is unreadable."""
    version: str | None = None
    try:
        version = champion_version(client, name)
        if version is None:
            return None
        model_uri = f"models:/{name}@{CHAMPION}"
        with tempfile.TemporaryDirectory(prefix="churn-champion-") as tmp:
            model, meta = load_champion(model_uri, client.tracking_uri, tmp)
        scored = score_champion(model, meta, version, rows, y)
    except GateError as err:
        logger.warning("gate: the champion of %r is unreadable: %s", name, err, exc_info=True)
        return UnreadableChampion(version=version, error=str(err), cause=err)
    logger.info(
        "gate: champion v%s (%s) on %d held-out rows: %s",
        version,
        scored.kind,
        len(rows),
        ", ".join(f"{k} {v:.4f}" for k, v in scored.metrics.items()),
    )
    return scored
