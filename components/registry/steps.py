"""The registry stages over files: select (rank + gate) and register (bundle, MLflow, store).

What the KFP components `select` and `register` (and the tests) call; they read
the training stages' outputs (`churn_components.training.steps`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from churn_components.common import load_pickle, read_dataset, read_features
from churn_components.registry.select import gate, rank_candidates
from churn_components.training.evaluate import Evaluation
from churn_components.training.steps import load_candidates, summary
from churn_components.training.train import Candidate, labels
from churn_core.config import ChurnConfig
from churn_core.errors import BundleIntegrityError
from churn_model.features import ChurnFeatures

logger = logging.getLogger(__name__)


# -- select -----------------------------------------------------------------------
def select_step(
    evaluation_path: str | Path, config: ChurnConfig, tracking_uri: str = ""
) -> dict[str, Any]:
    """Rank candidates by the selection rule, then gate the best against the champion."""
    evaluations: dict[str, Evaluation] = load_pickle(evaluation_path)["evaluations"]
    ranking = rank_candidates({k: ev.cv for k, ev in evaluations.items()}, config.selection)
    selected = ranking[0][0]
    champion, champion_version = None, None
    if tracking_uri:
        from churn_components.registry.register import champion_metrics, client_for

        champion, champion_version = champion_metrics(
            client_for(tracking_uri), config.registry.model_name
        )
    decision = gate(
        selected, evaluations[selected].cv, champion, config.selection, champion_version
    )
    return {
        "selected": selected,
        "ranking": [{"kind": k, "score": s} for k, s in ranking],
        "gate": decision.as_dict(),
    }


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
    connection_string: str | None = None,
    run_name: str = "churn-training",
    transform_sha256: str | None = None,
) -> dict[str, Any]:
    """Write the bundle of the selected candidate; log and register it in MLflow.

    Without a tracking URI the bundle's version is a content hash and nothing
    is registered. With an artifact store URI the bundle is also copied to
    ``bundles/<name>/<version>/`` there.
    """
    from churn_components.registry.package import (
        bundle_contents,
        permutation_importance,
        publish_bundle,
        write_model_bundle,
    )
    from churn_components.training import plots
    from churn_components.training.report import model_report

    candidates = load_candidates(candidate_paths)
    evaluated = load_pickle(evaluation_path)
    evaluations: dict[str, Evaluation] = evaluated["evaluations"]
    selected = str(decision["selected"])
    gate_decision = dict(decision["gate"])
    train, test = read_dataset(train_path), read_dataset(test_path)
    features = read_features(transform_path, transform_sha256)
    y_test = labels(test)
    ev = evaluations[selected]
    model = build_model(candidates[selected], ev, features)
    # what is served is what was evaluated: the bundle's model reproduces the held-out scores
    p_test = model.predict_proba(test)
    if not np.allclose(p_test, ev.test_scores, rtol=0, atol=1e-12):
        raise BundleIntegrityError(
            f"{selected}: the assembled model does not reproduce the evaluated held-out scores"
        )
    synthetic = bool(data_metadata.get("synthetic", False))
    training_data = {
        k: _integral(data_metadata.get(k))
        for k in ("sha256", "source_uri", "rows", "bytes")
        if k in data_metadata
    }
    training_data["train_rows"] = len(train)
    training_data["test_rows"] = len(test)
    summaries = {k: summary(e, candidates[k]) for k, e in evaluations.items()}
    report = model_report(
        summaries,
        selected,
        gate_decision,
        synthetic=synthetic,
        data=training_data,
        cv_shape=(config.evaluation.cv_repeats, config.evaluation.cv_folds),
    )
    importance = permutation_importance(model, test, y_test, config.split.seed)
    cm = plots.confusion(y_test, p_test, model.threshold)
    curves = {k: (y_test, e.test_scores) for k, e in evaluations.items()}
    figures = {
        "roc.png": plots.roc_png(curves),
        "pr.png": plots.pr_png(curves),
        "calibration.png": plots.calibration_png(
            y_test, p_test, config.evaluation.ece_bins, f"Calibration of {selected} (held-out)"
        ),
        "confusion_matrix.png": plots.confusion_png(cm, model.threshold),
        "feature_importance.png": plots.importance_png(
            importance, f"Permutation importance of {selected} (held-out)"
        ),
    }
    extra = {
        "selection": {
            "selected": selected,
            "ranking": decision.get("ranking"),
            "gate": gate_decision,
        },
        "feature_importance": importance,
    }
    sel = summaries[selected]
    out: dict[str, Any] = {
        "selected": selected,
        "promote": bool(gate_decision.get("promote")),
        "reason": gate_decision.get("reason", ""),
        "summaries": summaries,
        "confusion_matrix": cm,
        "report": report,
        "threshold": model.threshold,
        "synthetic": synthetic,
    }

    def write(version: str | None) -> dict[str, Any]:
        """Write the bundle (version None: a content hash); its metadata."""
        files, meta = bundle_contents(
            model,
            train,
            config,
            summary=sel,
            training_data=training_data,
            synthetic=synthetic,
            version=version,
            report=report,
            extra=extra,
        )
        write_model_bundle(bundle_dir, files, meta)
        return meta

    if not tracking_uri:
        meta = write(None)
        out.update(version=meta["version"], bundle=str(bundle_dir))
    else:
        from churn_components.registry.register import (
            client_for,
            log_run,
            next_version,
            register_bundle,
            start_run,
        )

        client = client_for(tracking_uri)
        name = config.registry.model_name
        with start_run(client, config.registry.experiment, artifact_store or None, run_name) as run:
            version = next_version(client, name)
            extra["mlflow"] = {"run_id": run.info.run_id, "experiment": config.registry.experiment}
            meta = write(str(version))
            metrics: dict[str, float] = {}
            for kind, s in summaries.items():
                for part in ("cv", "test"):
                    metrics.update(_prefixed(f"{kind}_{part}_", s[part]))
            metrics.update(_prefixed("cv_", sel["cv"]))
            metrics.update(_prefixed("test_", sel["test"]))
            metrics["threshold_f1"] = float(sel["thresholds"]["f1"])
            metrics["threshold_profit"] = float(sel["thresholds"]["profit"])
            metrics["threshold_served"] = float(model.threshold)
            params = {
                "selected": selected,
                "calibration": sel["calibration"],
                "threshold_rule": config.selection.threshold,
                "cv": f"{config.evaluation.cv_repeats}x{config.evaluation.cv_folds}",
                "seed": config.split.seed,
                **{
                    f"{k}.{p}": v
                    for k, s in summaries.items()
                    for p, v in _flat(s["params"]).items()
                },
            }
            tags = {
                "selected_kind": selected,
                "gate_decision": "promote" if out["promote"] else "keep_champion",
                "gate_reason": out["reason"][:4000],
                "synthetic": str(synthetic).lower(),
                "data_sha256": str(training_data.get("sha256", "")),
                "bundle_version": str(version),
                "code_version": str(meta["code_version"]),
            }
            log_run(
                client,
                run.info.run_id,
                params=params,
                metrics=metrics,
                tags=tags,
                plots=figures,
                documents={
                    "decision.json": extra["selection"],
                    "evaluation.json": summaries,
                    "bundle_metadata.json": meta,
                },
                texts={"report.md": report},
            )
            registration = register_bundle(
                client,
                run.info.run_id,
                bundle_dir,
                name,
                version,
                out["promote"],
                {"kind": selected, "gate": tags["gate_decision"], "synthetic": tags["synthetic"]},
            )
        out.update(
            version=registration.version,
            run_id=registration.run_id,
            model_uri=registration.model_uri,
            aliases=list(registration.aliases),
            bundle=str(bundle_dir),
        )
    if artifact_store:
        out["bundle_uri"] = publish_bundle(
            bundle_dir,
            artifact_store,
            config.registry.model_name,
            str(out["version"]),
            connection_string,
        )
    out["figures"] = figures
    return out


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
