"""`make demo`'s script end to end: train + register, serve the champion, predict, stop.

`scripts/demo.sh` runs as a person would run it, on the generated synthetic
stand-in (the data file is absent), with every output (artifacts, MLflow
SQLite, the server log) in a temporary folder and a quick configuration
(`CHURN_CONFIG_PATH`) so the whole loop stays well under a minute and a half.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.model_server import churn_command
from tests.fixtures.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "demo.sh"


def quick_config(path: Path) -> Path:
    """The project's model_config.yaml with a small synthetic set and short training."""
    from churn_core.config import expand_env

    source = REPO / "model_config.yaml"
    raw = yaml.safe_load(expand_env(source.read_text(), source))
    raw["data"]["synthetic_rows"] = 1500
    raw["models"]["enabled"] = ["logistic", "xgboost"]  # all three: test_pipeline_local
    raw["models"]["xgboost"].update({"max_n_estimators": 60, "early_stopping_rounds": 10})
    raw["models"]["mlp"]["epochs"] = 3
    raw["evaluation"].update({"cv_folds": 3, "cv_repeats": 1})
    raw.setdefault("bundle", {})["reference_rows"] = 200
    raw["explainer"]["background_rows"] = 50
    path.write_text(yaml.safe_dump(raw))
    return path


def listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("bash") is None, reason="the demo script needs bash")
def test_demo_script_runs_the_whole_loop_on_synthetic_data(tmp_path: Path) -> None:
    http_port = free_port()
    grpc_port = free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    artifacts = tmp_path / "artifacts"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
        "CHURN_BIN": churn_command()[0],
        "CHURN_DATA_URI": str(tmp_path / "data" / "absent.csv"),
        "CHURN_CONFIG_PATH": str(quick_config(tmp_path / "model_config.yaml")),
        "CHURN_ARTIFACT_ROOT": str(artifacts),
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CHURN_HTTP_PORT": str(http_port),
        "CHURN_GRPC_PORT": str(grpc_port),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=150,
    )
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, f"{out[-3000:]}\n{err[-3000:]}"

    # trained on the synthetic stand-in, loudly, and registered as the champion
    assert "SYNTHETIC DATA" in err and "absent.csv does not exist" in err
    assert re.search(r"model churn v1 \(\w+\).*\[SYNTHETIC DATA\]", out)
    assert (artifacts / "bundles" / "churn" / "1" / "metadata.json").is_file()
    assert (tmp_path / "mlflow.db").is_file()

    # served the champion from the registry on loopback, and five customers were scored
    log = (artifacts / "demo" / "serve.log").read_text()
    assert "models:/churn@champion" in log and "model churn ready" in log
    header = next(line for line in out.splitlines() if line.startswith("churn v1 at "))
    assert f"http://127.0.0.1:{http_port}: 5 customers" in header
    assert "[SYNTHETIC CUSTOMERS]" in header
    rows = re.findall(r"^(SYNTH-\d+)\s+(\d\.\d{3})\s+(yes|no)\s+(Yes|No)$", out, re.M)
    assert len(rows) == 5
    assert all(0 <= float(p) <= 1 for _, p, _, _ in rows)
    reasons = re.findall(r"^    \d\. .+ raises churn risk", out, re.M)
    assert len(reasons) >= 5  # --explain: the explainer model's reasons
    assert re.search(r"^       -> \S", out, re.M)  # with retention suggestions

    # the server was stopped
    assert "stopping churn serve" in out
    assert not listening(http_port) and not listening(grpc_port)
    assert "Stopping the model server" in log
    assert re.search(r"^== demo done \(\d+s\)$", out, re.M)  # its time, a figure, not a limit


@pytest.mark.skipif(shutil.which("bash") is None, reason="the demo script needs bash")
def test_demo_refuses_a_taken_port_before_training(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "CHURN_BIN": churn_command()[0],
            "CHURN_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
            "CHURN_HTTP_PORT": str(port),
            "CHURN_GRPC_PORT": str(free_port()),
        }
        done = subprocess.run(
            ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60
        )
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert "churn pipeline run" not in done.stdout and not (tmp_path / "artifacts").exists()
