"""Renaming modules does not break a stored bundle (it did, with the pickled format 1).

The source tree is copied to a tmp folder and two modules are renamed there:
the training module (`churn_components.training.train` -> `fitting`) and the
scorer module the old pickles named (`churn_model.scorers` -> `estimators`),
with every import rewritten. A subprocess imports only the copy (PYTHONPATH
precedes the editable install) and loads the bundles written by this process.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from churn_core.io import PICKLE_PROTOCOL
from churn_model.bundle import load_model
from tests.fixtures.training import ROOT

pytestmark = pytest.mark.integration

KINDS = ("logistic", "xgboost", "mlp")
PACKAGES = {"churn_core": "core", "churn_model": "model", "churn_components": "components"}
RENAMES = {
    ("components/training/train.py", "components/training/fitting.py"): (
        "churn_components.training.train",
        "churn_components.training.fitting",
    ),
    ("model/scorers.py", "model/estimators.py"): ("churn_model.scorers", "churn_model.estimators"),
}

SCRIPT = r"""
import json, pickle, sys
import numpy as np, pandas as pd

args = json.loads(sys.argv[1])
import churn_components, churn_model
assert churn_model.__file__.startswith(args["root"]), churn_model.__file__
assert churn_components.__file__.startswith(args["root"]), churn_components.__file__
unpickled = []
sys.addaudithook(lambda event, a: event == "pickle.find_class" and unpickled.append(a))
from churn_model.bundle import load_model

frame = pd.read_parquet(args["frame"])
proba = {kind: load_model(path)[0].predict_proba(frame) for kind, path in args["bundles"].items()}
np.savez(args["out"], **proba)
report = {"unpickled": [list(map(str, a)) for a in unpickled]}
try:
    pickle.loads(open(args["old"], "rb").read())
    report["old"] = "loaded"
except Exception as err:
    report["old"] = f"{type(err).__name__}: {err}"
print(json.dumps(report))
"""


def renamed_tree(dst: Path) -> Path:
    """A copy of the packages with the modules of RENAMES renamed; the folder to import from."""
    for folder in PACKAGES.values():
        shutil.copytree(
            ROOT / folder, dst / "src" / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    for (old, new), _ in RENAMES.items():
        (dst / "src" / old).rename(dst / "src" / new)
    for path in (dst / "src").rglob("*.py"):
        text = path.read_text()
        for old_name, new_name in RENAMES.values():
            text = re.sub(rf"\b{re.escape(old_name)}\b", new_name, text)
        path.write_text(text)
    links = dst / "path"
    links.mkdir()
    for package, folder in PACKAGES.items():
        (links / package).symlink_to(dst / "src" / folder, target_is_directory=True)
    return links


def test_renamed_modules_load_a_new_bundle_but_not_an_old_pickle(
    bundle_dir, customer_split, tmp_path
):
    frame = customer_split[1]
    frame.to_parquet(tmp_path / "frame.parquet")
    bundles = {kind: str(bundle_dir(kind)) for kind in KINDS}
    expected = {kind: load_model(path)[0].predict_proba(frame) for kind, path in bundles.items()}
    # the same logistic model as the format-1 bundle stored it
    old = tmp_path / "model.pkl"
    old.write_bytes(pickle.dumps(load_model(bundles["logistic"])[0], protocol=PICKLE_PROTOCOL))

    links = renamed_tree(tmp_path / "renamed")
    assert not (links / "churn_model" / "scorers.py").exists()
    assert not (links / "churn_components" / "training" / "train.py").exists()
    args = {
        "root": str(links),
        "frame": str(tmp_path / "frame.parquet"),
        "bundles": bundles,
        "out": str(tmp_path / "proba.npz"),
        "old": str(old),
    }
    env = {**os.environ, "PYTHONPATH": str(links)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(tmp_path / "proba.npz", allow_pickle=False) as got:
        for kind in KINDS:
            np.testing.assert_array_equal(got[kind], expected[kind])
    assert report["unpickled"] == []  # loading looked up no class through pickle
    assert report["old"] == "ModuleNotFoundError: No module named 'churn_model.scorers'"
