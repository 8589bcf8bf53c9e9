"""`churn pipeline`: argument handling, the synthetic fallback, submit's errors.

The CLI configures logging itself (stderr), so messages are read from capsys.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from churn_core.cli import main
from churn_pipelines.cli import resolve_source
from tests.fixtures.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_CONFIG_PATH", str(ROOT / "model_config.yaml"))
    monkeypatch.delenv("KFP_ENDPOINT", raising=False)


def test_existing_and_remote_sources_are_used_as_given(tmp_path: Path) -> None:
    csv = tmp_path / "real.csv"
    csv.write_text("x\n")
    assert resolve_source(str(csv), tmp_path, 100) == (str(csv), False)
    url = "https://example.invalid/telco.csv"
    assert resolve_source(url, tmp_path, 100) == (url, False)
    assert not (tmp_path / "synthetic").exists()


def test_missing_local_source_generates_synthetic_data_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, synthetic = resolve_source(str(tmp_path / "nope.csv"), tmp_path, 200)
    assert synthetic
    assert Path(uri).is_file() and Path(uri).read_text().count("SYNTH-") == 200
    err = capsys.readouterr().err
    assert "SYNTHETIC DATA" in err and "nope.csv does not exist" in err


def test_run_needs_local(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run"]) == 2
    out, err = capsys.readouterr()
    assert "only --local" in err and out == ""


def test_submit_without_endpoint_names_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "submit", "--tracking-uri", ""]) == 2
    err = capsys.readouterr().err
    assert "no KFP endpoint" in err and "KFP_ENDPOINT" in err


def test_submit_refuses_a_local_tracking_uri(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["pipeline", "submit", "--endpoint", "http://127.0.0.1:1"]
    assert main([*args, "--tracking-uri", "sqlite:///mlflow.db"]) == 2
    assert "cluster cannot reach" in capsys.readouterr().err


def test_submit_to_an_unreachable_endpoint_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    package = str(ROOT / "pipelines" / "churn_training.yaml")
    args = ["pipeline", "submit", "--endpoint", endpoint, "--package", package]
    assert main([*args, "--tracking-uri", ""]) == 2
    assert f"KFP endpoint {endpoint} did not accept the run" in capsys.readouterr().err
