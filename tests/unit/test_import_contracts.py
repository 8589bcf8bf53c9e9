"""The import contracts of `make lint` hold on the tree, and break on a forbidden import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = {
    "churn_core": "core",
    "churn_model": "model",
    "churn_components": "components",
    "churn_pipelines": "pipelines",
    "churn_inference": "inference",
    "churn_monitoring": "monitoring",
    "churn_rollout": "rollout",
}


def lint_imports(packages_root: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts over the packages found on sys.path."""
    env = dict(os.environ)
    if packages_root is not None:
        # PYTHONPATH precedes the editable install's .pth: the copies are what grimp reads
        env["PYTHONPATH"] = str(packages_root)
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def copy_packages(tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    root.mkdir()
    for name, folder in PACKAGES.items():
        shutil.copytree(ROOT / folder, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        (
            "churn_inference/loading.py",
            "from churn_components.registry import register",
            "serving, monitoring and rollout never import the training code",
        ),
        (
            "churn_model/features.py",
            "from churn_inference import schema",
            "the model package imports nothing of ours but churn_core",
        ),
        (
            "churn_core/store.py",
            "from churn_model import contract",
            "churn_core imports nothing of ours",
        ),
        (
            "churn_components/training/train.py",
            "from churn_inference import metrics",
            "training never imports serving, monitoring or rollout",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    root = copy_packages(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{bad_import}  # noqa\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    # the named contract breaks (others may break too: indirect imports count)
    assert f"{contract} BROKEN" in result.stdout
    assert bad_import.split()[1] in result.stdout  # the report names the imported module
