"""The training stage's artifacts as data: a trained candidate, the evaluations. No pickle.

Both are one archive (`churn_model.serialize.write_archive`: an uncompressed
zip whose bytes depend only on its contents) holding a JSON document and the
files its entries name with their sha256:

* ``candidate.zip``: ``candidate.json`` (``format``, ``kind``, ``skipped``,
  ``params``, ``seconds``, ``cv`` with its fold parameters and seconds and the
  out-of-fold arrays) and the estimator's stored state (`to_state`, as in a
  bundle: JSON fields, ``.npy`` arrays, XGBoost's own model file);
* ``evaluation.zip``: ``evaluation.json`` (``format``, the held-out labels,
  per kind the figures, thresholds and calibration scores, the fitted
  calibrator's state and the held-out and out-of-fold calibrated scores).

A model read back scores exactly as the one written (the register step checks
the assembled model against the evaluated held-out scores to 1e-12). An
archive this code did not write, of another format or with a file that does
not match its sha256, is refused naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from churn_components.training.evaluate import Evaluation
from churn_components.training.train import Candidate, CVPredictions
from churn_core.errors import InvalidInput
from churn_core.io import write_bytes_atomic
from churn_model.bundle import ESTIMATORS, pack_calibrator, unpack_calibrator
from churn_model.serialize import (
    State,
    json_bytes,
    jsonable,
    pack,
    read_archive,
    unpack,
    write_archive,
)

FORMAT = 1
CANDIDATE_DOC = "candidate.json"
EVALUATION_DOC = "evaluation.json"


def _arrays(arrays: Mapping[str, np.ndarray], folder: str) -> tuple[dict, dict[str, bytes]]:
    return pack(State(fields={}, arrays=dict(arrays)), folder)


def _read(path: str | Path, document: str) -> tuple[dict[str, Any], Any]:
    """(the JSON document, a reader of the archive's files) of an archive at `path`."""
    import json

    try:
        files = read_archive(Path(path).read_bytes())
        doc = json.loads(files[document])
    except (OSError, ValueError, KeyError) as err:
        raise InvalidInput(f"{path}: not a training artifact ({document}): {err}") from err
    if doc.get("format") != FORMAT:
        raise InvalidInput(
            f"{path}: {document} has format {doc.get('format')!r}; this code reads {FORMAT}"
        )

    def read(name: str) -> bytes:
        if name not in files:
            raise InvalidInput(f"{path}: {name} is missing")
        return files[name]

    return doc, read


# -- a candidate ---------------------------------------------------------------------------


def write_candidate(path: str | Path, kind: str, candidate: Candidate | None) -> None:
    """`candidate` of `kind` (None: the kind was skipped) as ``candidate.zip`` at `path`."""
    files: dict[str, bytes] = {}
    doc: dict[str, Any] = {"format": FORMAT, "kind": kind, "skipped": candidate is None}
    if candidate is not None:
        if type(candidate.estimator) is not ESTIMATORS.get(kind):
            raise TypeError(f"cannot store a {type(candidate.estimator).__name__} as {kind!r}")
        estimator, more = pack(candidate.estimator.to_state(), "estimator")
        files.update(more)
        arrays, more = _arrays({"oof": candidate.cv.oof, "fold": candidate.cv.fold}, "cv")
        files.update(more)
        doc.update(
            params=jsonable(candidate.params),
            seconds=jsonable(candidate.seconds),
            estimator=estimator,
            cv={
                "arrays": arrays,
                "fold_params": jsonable(candidate.cv.fold_params),
                "seconds": float(candidate.cv.seconds),
            },
        )
    files[CANDIDATE_DOC] = json_bytes(doc)
    write_bytes_atomic(path, write_archive(files))


def read_candidate(path: str | Path) -> tuple[str, Candidate | None]:
    """(kind, the candidate or None when skipped) of a ``candidate.zip``.

    Raises:
        InvalidInput: not such an archive, another format, a file not matching its sha256.
    """
    doc, read = _read(path, CANDIDATE_DOC)
    kind = str(doc["kind"])
    if doc["skipped"]:
        return kind, None
    try:
        estimator = ESTIMATORS[kind].from_state(unpack(doc["estimator"], read))
        arrays = unpack(doc["cv"]["arrays"], read).arrays
    except (KeyError, ValueError) as err:
        raise InvalidInput(f"{path}: the {kind} candidate cannot be read: {err}") from err
    cv = CVPredictions(
        oof=arrays["oof"],
        fold=arrays["fold"],
        fold_params=list(doc["cv"]["fold_params"]),
        seconds=float(doc["cv"]["seconds"]),
    )
    candidate = Candidate(
        kind=kind,
        estimator=estimator,
        cv=cv,
        params=dict(doc["params"]),
        seconds={k: float(v) for k, v in doc["seconds"].items()},
    )
    return kind, candidate


# -- the evaluations -----------------------------------------------------------------------

_FIGURES = ("thresholds", "cv", "cv_std", "test", "calibration_scores", "test_at")


def write_evaluations(
    path: str | Path, evaluations: Mapping[str, Evaluation], y_test: np.ndarray
) -> None:
    """Every kind's `Evaluation` and the held-out labels as ``evaluation.zip`` at `path`."""
    labels, files = _arrays({"y_test": np.asarray(y_test)}, "labels")
    doc: dict[str, Any] = {"format": FORMAT, "labels": labels, "evaluations": {}}
    for kind, ev in evaluations.items():
        calibrator, more = pack_calibrator(ev.calibrator, f"{kind}/calibrator")
        files.update(more)
        scores, more = _arrays(
            {"test_scores": ev.test_scores, "oof_calibrated": ev.oof_calibrated}, f"{kind}/scores"
        )
        files.update(more)
        doc["evaluations"][kind] = {
            "kind": ev.kind,
            "calibration": ev.calibration,
            "calibrator": calibrator,
            "scores": scores,
            **{name: jsonable(getattr(ev, name)) for name in _FIGURES},
        }
    files[EVALUATION_DOC] = json_bytes(doc)
    write_bytes_atomic(path, write_archive(files))


def read_evaluations(path: str | Path) -> tuple[dict[str, Evaluation], np.ndarray]:
    """(kind -> `Evaluation`, the held-out labels) of an ``evaluation.zip``.

    Raises:
        InvalidInput: not such an archive, another format, a file not matching its sha256.
    """
    doc, read = _read(path, EVALUATION_DOC)
    out: dict[str, Evaluation] = {}
    try:
        y_test = unpack(doc["labels"], read).arrays["y_test"]
        for kind, stored in doc["evaluations"].items():
            calibrator = unpack_calibrator(stored["calibrator"], read)
            scores = unpack(stored["scores"], read).arrays
            out[kind] = Evaluation(
                kind=stored["kind"],
                calibration=stored["calibration"],
                calibrator=calibrator,
                test_scores=scores["test_scores"],
                oof_calibrated=scores["oof_calibrated"],
                **{name: stored[name] for name in _FIGURES},
            )
    except (KeyError, ValueError) as err:
        raise InvalidInput(f"{path}: the evaluations cannot be read: {err}") from err
    return out, y_test
