"""`make bench` as a smoke run: bench/run.py --quick --skip-mlserver against a real churn serve.

The run must give every churn-serve figure (latency, throughput, batches,
explanations, server CPU per request), check parity on held-out customers,
re-print its table from the JSON, and fail (non-zero exit, a clear message)
when the served answers differ from the offline model's. MLServer needs its
own venv (a download) and is left out here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"

# every figure the table shows for churn serve (report.ROWS), as <load run>.<metric>
CHURN_FIGURES = [
    f"{run}.{metric}"
    for run in (
        "rest_c1",
        "grpc_c1",
        "rest_c8",
        "rest_c32",
        "grpc_c8",
        "grpc_c32",
        "rest_batch_1000",
        "grpc_batch_1000",
        "explain_v1_c1",
        "explain_v2_c1",
    )
    for metric in ("p50_ms", "p99_ms", "throughput_rps", "server_cpu_ms_per_request")
]
LOGGING_FIGURES = [
    "rest_c1.p50_ms",
    "rest_c32.throughput_rps",
    "grpc_c32.throughput_rps",
    "rest_batch_1000.p50_ms",
    "rest_c32.server_cpu_ms_per_request",
    "rest_c32.receiver_cpu_ms_per_request",
    "rest_c32.events_per_request",
]


def bench(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), "--quick", "--skip-mlserver", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    out = tmp_path_factory.mktemp("bench-results")
    proc = bench(out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [path] = out.glob("bench-*.json")
    return json.loads(path.read_text()), proc.stdout, path


def test_quick_run_has_every_churn_serve_figure(quick_run):
    results, stdout, _ = quick_run
    summary = results["servers"]["churn"]["summary"]
    missing = [f for f in CHURN_FIGURES if f not in summary]
    assert not missing, missing
    assert all(summary[f]["median"] > 0 for f in CHURN_FIGURES)
    route = results["servers"]["churn_kserve_route"]["summary"]
    assert route["rest_c32.throughput_rps"]["median"] > 0
    assert "REST throughput c=32" in stdout and "gRPC throughput c=32" in stdout


def test_parity_holds_and_cpu_per_request_is_measured(quick_run):
    results, _, _ = quick_run
    assert results["parity_failures"] == 0
    parity = results["parity"]["churn"]
    assert parity["checks"] >= 1
    assert parity["rest"] <= 1e-6 and parity["grpc"] is not None and parity["grpc"] <= 1e-6
    rounds = results["servers"]["churn"]["rounds"]
    for runs in rounds:
        for name, result in runs.items():
            assert result["server_cpu_ms_per_request"] > 0, name
            assert result["server_cpu_s"] > 0, name


def test_payload_logging_is_measured_or_skipped_with_a_note(quick_run):
    results, stdout, _ = quick_run
    if "churn_logging" in results["servers"]:
        summary = results["servers"]["churn_logging"]["summary"]
        assert all(f in summary for f in LOGGING_FIGURES)
        assert summary["rest_c32.events_per_request"]["median"] > 0
    else:
        assert "--log-url" in results["skipped"]["churn_logging"]
        assert "payload logging on: skipped" in stdout


def test_report_reprints_the_table(quick_run):
    _, stdout, path = quick_run
    proc = subprocess.run(
        [sys.executable, str(RUN), "--report", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    table = [line for line in stdout.splitlines() if line.startswith(("REST ", "gRPC ", "server"))]
    assert table
    assert all(line in proc.stdout.splitlines() for line in table)


def test_a_parity_difference_fails_the_run(tmp_path):
    proc = bench(tmp_path, "--inject-parity-error", "--skip-logging", "--skip-kserve-route")
    assert proc.returncode != 0
    assert "PARITY FAILURE" in proc.stderr
    assert "max |served - offline|" in proc.stderr
    assert not list(tmp_path.glob("bench-*.json"))


def test_the_event_receiver_acknowledges_and_counts_binary_cloudevents(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "receiver.py"), "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/stats", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.1)
        with requests.Session() as session:
            for i, kind in enumerate(("request", "response", "request")):
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": f"id-{i // 2}",
                    "ce-type": f"org.kubeflow.serving.inference.{kind}",
                    "ce-source": "bench-test",
                    "content-type": "application/json",
                }
                r = session.post(url, data=b'{"inputs": []}', headers=headers, timeout=5)
                assert r.status_code == 200
            chunked = session.post(url, data=iter([b"{}", b"[]"]), timeout=5)  # no ce-id
            assert chunked.status_code == 200
            stats = session.get(f"{url}/stats", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert stats["events"] == 4
    assert stats["by_type"]["org.kubeflow.serving.inference.request"] == 2
    assert stats["by_type"]["org.kubeflow.serving.inference.response"] == 1
    assert stats["without_ce_id"] == 1
    assert stats["bytes"] == 3 * len(b'{"inputs": []}') + 4
