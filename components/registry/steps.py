"""The registry stages over files: select (rank + gate) and register (bundle, MLflow, store).

What the KFP components `select` and `register` (and the tests) call; they read
the training stages' outputs (`churn_components.training.steps`).

`register_step` is a list of named steps:

1. `assemble_model`: the served model of the selected candidate, checked to
   reproduce the evaluated held-out scores;
2. `describe_model`: the `training_data_record`, the report, the permutation
   importance, the confusion matrix and the `model_figures`;
3. without a registry, `write_bundle` with a content-hash version; with one,
   `log_and_register`: one MLflow run in which `write_bundle` writes the next
   version, `run_record` (params, metrics, tags) and the figures are logged, and
   the bundle is registered and its aliases moved;
4. `publish`: the bundle copied to the artifact store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_components.common import read_dataset, read_features
from churn_components.registry.select import gate, rank_candidates
from churn_components.training.artifacts import read_evaluations
from churn_components.training.evaluate import Evaluation
from churn_components.training.steps import load_candidates, summary
from churn_components.training.train import Candidate, labels
from churn_core.config import ChurnConfig
from churn_core.errors import BundleIntegrityError, GateError, InvalidInput, StoreError
from churn_model.features import ChurnFeatures

logger = logging.getLogger(__name__)


# -- select -----------------------------------------------------------------------
def select_step(
    evaluation_path: str | Path,
    test_path: str | Path,
    config: ChurnConfig,
    tracking_uri: str = "",
    *,
    data_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rank candidates by the selection rule, then gate the best against the champion.

    The champion (``models:/<registry.model_name>@champion``) and the selected
    challenger are scored on the same rows: the held-out split at `test_path`,
    the one the challenger was evaluated on (checked against the evaluation's
    labels). `data_metadata` is the metadata of that split (its ``synthetic``
    flag is the challenger's provenance; without the flag, the customer ids
    tell). Without a tracking URI there is no registry and nothing to gate.

    Raises:
        GateError: the split is not the evaluated one, or the champion cannot be
            read or scored and `selection.replace_unreadable_champion` is off.
    """
    from churn_components.registry.select import ScoredModel, metrics_on_rows

    evaluations, y_test = read_evaluations(evaluation_path)
    ranking = rank_candidates({k: ev.cv for k, ev in evaluations.items()}, config.selection)
    selected = ranking[0][0]
    test = read_dataset(test_path)
    _require_evaluated_rows(test, y_test, test_path)
    ev = evaluations[selected]
    threshold = float(ev.thresholds["served"])
    challenger = ScoredModel(
        kind=selected,
        version=None,
        synthetic=_challenger_synthetic(data_metadata, test),
        threshold=threshold,
        metrics=metrics_on_rows(y_test, ev.test_scores, threshold),
    )
    champion = None
    if tracking_uri:
        from churn_components.registry.champion import assess_champion
        from churn_components.registry.register import client_for

        champion = assess_champion(
            client_for(tracking_uri), config.registry.model_name, test, y_test
        )
    decision = gate(
        challenger, champion, config.selection, rows=len(y_test), registry=bool(tracking_uri)
    )
    return {
        "selected": selected,
        "ranking": [{"kind": k, "score": s} for k, s in ranking],
        "gate": decision.as_dict(),
    }


def _require_evaluated_rows(test: Any, y_test: np.ndarray, test_path: str | Path) -> None:
    """The gate's rows must be the very rows the challenger's held-out scores belong to."""
    y = labels(test)
    if len(y) != len(y_test) or not np.array_equal(y, y_test):
        differs = "other labels" if len(y) == len(y_test) else f"{len(y_test)} rows"
        raise GateError(
            f"the test split {test_path} ({len(y)} rows) is not the one the challenger was "
            f"evaluated on ({differs}): the gate compares both models on the same rows"
        )


def _challenger_synthetic(data_metadata: Mapping[str, Any] | None, test: Any) -> bool:
    """The challenger's provenance: its data's ``synthetic`` flag, else its customer ids."""
    if data_metadata is not None and "synthetic" in data_metadata:
        return bool(data_metadata["synthetic"])
    from churn_model.contract import ID_COLUMN
    from churn_model.synthetic import is_synthetic

    if ID_COLUMN not in test:
        raise GateError(
            f"cannot tell whether the challenger's data is synthetic: no 'synthetic' flag in "
            f"the test split's metadata and no {ID_COLUMN} column"
        )
    return is_synthetic(test[ID_COLUMN])


# -- register and bundle ------------------------------------------------------------
def build_model(candidate: Candidate, evaluation: Evaluation, features: ChurnFeatures) -> Any:
    """The served `ChurnModel`: the features stage's transform, estimator, calibrator, threshold."""
    from churn_model.model import ChurnModel

    return ChurnModel(
        features=features,
        estimator=candidate.estimator,
        calibrator=evaluation.calibrator,
        threshold=float(evaluation.thresholds["served"]),
    )


@dataclass(frozen=True)
class Assembled:
    """The selected candidate as it will be served, beside what it was evaluated on."""

    selected: str
    model: Any  # churn_model.model.ChurnModel
    evaluations: Mapping[str, Evaluation]
    summaries: dict[str, dict[str, Any]]  # every candidate's figures and hyperparameters
    train: pd.DataFrame
    test: pd.DataFrame
    y_test: np.ndarray
    p_test: np.ndarray  # the served model's held-out probabilities


@dataclass(frozen=True)
class Records:
    """What is said about the model: in the bundle, the MLflow run and the KFP UI."""

    training_data: dict[str, Any]
    synthetic: bool
    gate: dict[str, Any]
    selection: dict[str, Any]  # selected, ranking, gate (decision.json)
    importance: dict[str, float]
    confusion_matrix: Any
    report: str
    figures: dict[str, bytes]

    @property
    def promote(self) -> bool:
        """Whether the gate let the model become the champion."""
        return bool(self.gate.get("promote"))

    @property
    def reason(self) -> str:
        """The gate's reason, as a sentence."""
        return str(self.gate.get("reason", ""))


def register_step(
    candidate_paths: Mapping[str, str | Path],
    evaluation_path: str | Path,
    decision: Mapping[str, Any],
    train_path: str | Path,
    test_path: str | Path,
    transform_path: str | Path,
    data_metadata: Mapping[str, Any],
    config: ChurnConfig,
    bundle_dir: str | Path,
    *,
    tracking_uri: str = "",
    artifact_store: str = "",
    connection_string: str = "",
    run_name: str = "churn-training",
    transform_sha256: str | None = None,
    trigger: str = "",
) -> dict[str, Any]:
    """Write the bundle of the selected candidate; log and register it in MLflow; publish it.

    Without a tracking URI the bundle's version is a content hash and nothing
    is registered. With an artifact store URI the bundle is also copied to
    ``bundles/<name>/<version>/`` there (`connection_string` for a blob store;
    empty: DefaultAzureCredential). `trigger`: the retraining trigger's JSON
    (`trigger_record`; empty for a run started by hand), logged in the MLflow run.
    """
    assembled = assemble_model(
        candidate_paths,
        evaluation_path,
        str(decision["selected"]),
        train_path,
        test_path,
        transform_path,
        transform_sha256,
    )
    records = describe_model(assembled, decision, data_metadata, config)
    started_by = trigger_record(trigger)
    published: dict[str, str] = {}

    def publish_first(version: str) -> None:
        # before the registry learns of the version: a store that fails registers nothing
        if artifact_store:
            published["uri"] = publish(
                bundle_dir, artifact_store, config, version, connection_string
            )

    if tracking_uri:
        registered = log_and_register(
            assembled,
            records,
            config,
            bundle_dir,
            tracking_uri=tracking_uri,
            artifact_root=artifact_store,
            run_name=run_name,
            trigger=started_by,
            before_register=publish_first,
        )
    else:
        meta = write_bundle(bundle_dir, assembled, records, config, version=None)
        registered = {"version": meta["version"]}
        publish_first(str(meta["version"]))
    out = _result(assembled, records, bundle_dir, registered)
    if published:
        out["bundle_uri"] = published["uri"]
    return out


def assemble_model(
    candidate_paths: Mapping[str, str | Path],
    evaluation_path: str | Path,
    selected: str,
    train_path: str | Path,
    test_path: str | Path,
    transform_path: str | Path,
    transform_sha256: str | None = None,
) -> Assembled:
    """Build the served model of `selected`; check it reproduces the evaluated held-out scores.

    Raises:
        BundleIntegrityError: the assembled model scores the held-out rows differently
            from the evaluation (what would be served is not what was evaluated).
    """
    candidates = load_candidates(candidate_paths)
    evaluations, _ = read_evaluations(evaluation_path)
    train, test = read_dataset(train_path), read_dataset(test_path)
    features = read_features(transform_path, transform_sha256)
    ev = evaluations[selected]
    model = build_model(candidates[selected], ev, features)
    p_test = model.predict_proba(test)
    if not np.allclose(p_test, ev.test_scores, rtol=0, atol=1e-12):
        raise BundleIntegrityError(
            f"{selected}: the assembled model does not reproduce the evaluated held-out scores"
        )
    return Assembled(
        selected=selected,
        model=model,
        evaluations=evaluations,
        summaries={k: summary(e, candidates[k]) for k, e in evaluations.items()},
        train=train,
        test=test,
        y_test=labels(test),
        p_test=p_test,
    )


def training_data_record(data_metadata: Mapping[str, Any], assembled: Assembled) -> dict[str, Any]:
    """What the model was trained on: the source's sha256, URI and size, the split's rows."""
    record = {
        k: _integral(data_metadata.get(k))
        for k in ("sha256", "source_uri", "rows", "bytes")
        if k in data_metadata
    }
    record["train_rows"] = len(assembled.train)
    record["test_rows"] = len(assembled.test)
    return record


def describe_model(
    assembled: Assembled,
    decision: Mapping[str, Any],
    data_metadata: Mapping[str, Any],
    config: ChurnConfig,
) -> Records:
    """The report, the permutation importance, the confusion matrix and the figures."""
    from churn_components.registry.package import permutation_importance
    from churn_components.training import plots
    from churn_components.training.report import model_report

    gate_decision = dict(decision["gate"])
    synthetic = bool(data_metadata.get("synthetic", False))
    training_data = training_data_record(data_metadata, assembled)
    report = model_report(
        assembled.summaries,
        assembled.selected,
        gate_decision,
        synthetic=synthetic,
        data=training_data,
        cv_shape=(config.evaluation.cv_repeats, config.evaluation.cv_folds),
    )
    model, test, y_test = assembled.model, assembled.test, assembled.y_test
    importance = permutation_importance(model, test, y_test, config.split.seed)
    cm = plots.confusion(y_test, assembled.p_test, model.threshold)
    return Records(
        training_data=training_data,
        synthetic=synthetic,
        gate=gate_decision,
        selection={
            "selected": assembled.selected,
            "ranking": decision.get("ranking"),
            "gate": gate_decision,
        },
        importance=importance,
        confusion_matrix=cm,
        report=report,
        figures=model_figures(assembled, importance, cm, config),
    )


def model_figures(
    assembled: Assembled, importance: Mapping[str, float], cm: Any, config: ChurnConfig
) -> dict[str, bytes]:
    """The PNGs of the run: ROC and PR of every candidate, calibration, confusion, importance."""
    from churn_components.training import plots

    selected, threshold = assembled.selected, assembled.model.threshold
    curves = {k: (assembled.y_test, e.test_scores) for k, e in assembled.evaluations.items()}
    return {
        "roc.png": plots.roc_png(curves),
        "pr.png": plots.pr_png(curves),
        "calibration.png": plots.calibration_png(
            assembled.y_test,
            assembled.p_test,
            config.evaluation.ece_bins,
            f"Calibration of {selected} (held-out)",
        ),
        "confusion_matrix.png": plots.confusion_png(cm, threshold),
        "feature_importance.png": plots.importance_png(
            dict(importance), f"Permutation importance of {selected} (held-out)"
        ),
    }


def write_bundle(
    bundle_dir: str | Path,
    assembled: Assembled,
    records: Records,
    config: ChurnConfig,
    *,
    version: str | None,
    mlflow_run: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write the bundle (version None: a content hash); its metadata."""
    from churn_components.registry.package import bundle_contents, write_model_bundle

    extra: dict[str, Any] = {
        "selection": records.selection,
        "feature_importance": records.importance,
    }
    if mlflow_run is not None:
        extra["mlflow"] = dict(mlflow_run)
    files, meta = bundle_contents(
        assembled.model,
        assembled.train,
        config,
        summary=assembled.summaries[assembled.selected],
        training_data=records.training_data,
        synthetic=records.synthetic,
        version=version,
        report=records.report,
        extra=extra,
        held_out=(assembled.p_test, assembled.y_test),
    )
    write_model_bundle(bundle_dir, files, meta)
    return meta


def run_record(
    assembled: Assembled,
    records: Records,
    config: ChurnConfig,
    meta: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """The MLflow run's params, metrics and tags for the bundle described by `meta`."""
    summaries, selected = assembled.summaries, assembled.selected
    sel = summaries[selected]
    metrics: dict[str, float] = {}
    for kind, s in summaries.items():
        for part in ("cv", "test"):
            metrics.update(_prefixed(f"{kind}_{part}_", s[part]))
    metrics.update(_prefixed("cv_", sel["cv"]))
    metrics.update(_prefixed("test_", sel["test"]))
    metrics["threshold_f1"] = float(sel["thresholds"]["f1"])
    metrics["threshold_profit"] = float(sel["thresholds"]["profit"])
    metrics["threshold_served"] = float(assembled.model.threshold)
    params = {
        "selected": selected,
        "calibration": sel["calibration"],
        "threshold_rule": config.selection.threshold,
        "cv": f"{config.evaluation.cv_repeats}x{config.evaluation.cv_folds}",
        "seed": config.split.seed,
        **{f"{k}.{p}": v for k, s in summaries.items() for p, v in _flat(s["params"]).items()},
    }
    tags = {
        "selected_kind": selected,
        "gate_decision": _gate_tag(records),
        "gate_reason": records.reason[:4000],
        "synthetic": str(records.synthetic).lower(),
        "data_sha256": str(records.training_data.get("sha256", "")),
        "bundle_version": str(meta["version"]),
        "code_version": str(meta["code_version"]),
    }
    return params, metrics, tags


def log_and_register(
    assembled: Assembled,
    records: Records,
    config: ChurnConfig,
    bundle_dir: str | Path,
    *,
    tracking_uri: str,
    artifact_root: str = "",
    run_name: str = "churn-training",
    trigger: Mapping[str, Any] | None = None,
    before_register: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One MLflow run: write the bundle as the next version, log its record, register it.

    `trigger` (`trigger_record`) goes into the run as ``trigger.json`` and the
    ``trigger_reason`` tag. `before_register(version)` runs between writing the
    bundle and registering it (publishing it to the artifact store): when it
    raises, the run is marked FAILED and nothing is registered.

    Raises:
        StoreError: the registry could not be reached or refused a write; the run
            (if it was created) is marked FAILED.
    """
    from mlflow.exceptions import MlflowException

    from churn_components.registry.register import (
        client_for,
        log_run,
        next_version,
        register_bundle,
        start_run,
    )

    client = client_for(tracking_uri)
    name, experiment = config.registry.model_name, config.registry.experiment
    try:
        with start_run(client, experiment, artifact_root or None, run_name) as run:
            run_id = run.info.run_id
            version = next_version(client, name)
            meta = write_bundle(
                bundle_dir,
                assembled,
                records,
                config,
                version=str(version),
                mlflow_run={"run_id": run_id, "experiment": experiment},
            )
            params, metrics, tags = run_record(assembled, records, config, meta)
            documents: dict[str, Any] = {"trigger.json": trigger} if trigger else {}
            if trigger:
                tags["trigger_reason"] = str(trigger["reason"])[:4000]
            log_run(
                client,
                run_id,
                params=params,
                metrics=metrics,
                tags=tags,
                plots=records.figures,
                documents={
                    "decision.json": records.selection,
                    "evaluation.json": assembled.summaries,
                    "bundle_metadata.json": meta,
                    **documents,
                },
                texts={"report.md": records.report},
            )
            if before_register is not None:
                before_register(str(version))
            registration = register_bundle(
                client,
                run_id,
                bundle_dir,
                name,
                version,
                records.promote,
                {
                    "kind": assembled.selected,
                    "gate": tags["gate_decision"],
                    "synthetic": tags["synthetic"],
                },
            )
    except MlflowException as err:
        raise StoreError(f"registry {client.tracking_uri}: cannot register {name}: {err}") from err
    return {
        "version": registration.version,
        "run_id": registration.run_id,
        "model_uri": registration.model_uri,
        "aliases": list(registration.aliases),
    }


def trigger_record(trigger: str) -> dict[str, Any] | None:
    """The retraining trigger's JSON (a ``reason`` sentence, its evidence); None when empty."""
    if not trigger.strip():
        return None
    try:
        record = json.loads(trigger)
    except ValueError as err:
        raise InvalidInput(f"trigger parameter: not JSON ({err}): {trigger[:200]!r}") from err
    if not isinstance(record, dict) or not isinstance(record.get("reason"), str):
        raise InvalidInput(
            "trigger parameter: expected a JSON object with a 'reason' string, "
            f"got {trigger[:200]!r}"
        )
    return record


def publish(
    bundle_dir: str | Path,
    artifact_store: str,
    config: ChurnConfig,
    version: str,
    connection_string: str = "",
) -> str:
    """Copy the bundle to ``bundles/<name>/<version>/`` in the artifact store; its URI."""
    from churn_components.registry.package import publish_bundle

    return publish_bundle(
        bundle_dir, artifact_store, config.registry.model_name, version, connection_string
    )


def _result(
    assembled: Assembled,
    records: Records,
    bundle_dir: str | Path,
    registered: Mapping[str, Any],
) -> dict[str, Any]:
    """What the register component shows and passes on."""
    return {
        "selected": assembled.selected,
        "promote": records.promote,
        "reason": records.reason,
        "summaries": assembled.summaries,
        "confusion_matrix": records.confusion_matrix,
        "report": records.report,
        "threshold": assembled.model.threshold,
        "synthetic": records.synthetic,
        "bundle": str(bundle_dir),
        **registered,
        "figures": records.figures,
    }


def _gate_tag(records: Records) -> str:
    return "promote" if records.promote else "keep_champion"


def _integral(value: Any) -> Any:
    """KFP metadata carries every number as a float: give counts back as integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _prefixed(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and np.isfinite(v)
    }


def _flat(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out
