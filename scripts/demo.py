"""`make demo`: the whole loop on one machine, every step a real command.

    .venv/bin/python scripts/demo.py

1. train and register the champion (`churn pipeline run --local`: kfp.local, MLflow on SQLite);
2. start the drift service (`churn monitor serve`) and the champion's server logging to it
   (`churn serve --log-url`);
3. score five customers over the v2 API with reasons, suggestions and what-ifs
   (`churn predict --sample 5 --explain`);
4. replay customers through the logging path: unshifted ones first (windows, no drift),
   then a shifted population (month-to-month contracts, shorter tenure) until the drift is
   confirmed and the trigger starts ONE training run with the evidence;
5. wait for that run: a challenger trained, gated like for like against the champion and
   registered;
6. serve the challenger beside the stable model and let the rollout controller's gates
   compare them on the same replayed traffic (a real Prometheus scraping both, where
   installed; the InferenceService is the chart's, patched in memory, not a cluster) and
   decide promotion or rollback;
7. print a summary of every step and where to look.

Settings are the usual CHURN_* variables (CHURN_DATA_URI: without the real CSV the
synthetic stand-in is used, and announced). Everything the demo writes goes under
CHURN_ARTIFACT_ROOT/demo (default artifacts/demo). DEMO_TRAIN_ARGS adds arguments to
the first `churn pipeline run --local`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
console = Console(highlight=False, width=int(os.environ.get("COLUMNS", "110")))
WINDOW = 200  # rows per drift window in the demo (the production default is 500)


@dataclass
class Step:
    """One step of the summary."""

    name: str
    seconds: float
    result: str


@dataclass
class Demo:
    """The demo's processes, paths and summary."""

    work: Path
    env: dict[str, str]
    churn: list[str]
    steps: list[Step] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time a step; what it appends to the yielded list is its result line."""
        console.rule(f"[bold]{len(self.steps) + 1}. {name}")
        t0 = time.monotonic()
        result: list[str] = []
        yield result
        self.steps.append(Step(name, time.monotonic() - t0, "; ".join(result)))

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        """A churn command in the foreground, its output shown; fails the demo on error."""
        cmd = [*self.churn, *args]
        console.print(f"$ churn {shlex.join(args)}", style="dim")
        done = subprocess.run(
            cmd, env={**self.env, **(env or {})}, cwd=REPO, capture_output=True, text=True
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            console.print(output[-4000:])
            raise SystemExit(f"demo: `churn {shlex.join(args)}` failed (exit {done.returncode})")
        return output

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Path:
        """A churn command in the background, its output in <work>/<name>.log."""
        log_path = self.work / f"{name}.log"
        console.print(f"$ churn {shlex.join(args)} &   (log: {log_path})", style="dim")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*self.churn, *args],
                env={**self.env, **(env or {})},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return log_path

    def stop_all(self) -> None:
        """Stop every background process (SIGTERM, then SIGKILL)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, log_path: Path, timeout: float = 120.0) -> None:
    """Wait until `url` answers 200, or fail the demo with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    console.print(log_path.read_text(errors="replace")[-3000:])
    raise SystemExit(f"demo: {url} did not become ready (log above)")


def demo_config(work: Path, settings: Any) -> Path:
    """model_config.yaml with demo-sized drift windows and trigger (printed)."""
    from churn_core.config import expand_env

    source = Path(settings.config_path)
    if not source.is_absolute():
        source = REPO / source
    raw = yaml.safe_load(expand_env(source.read_text(), source))
    raw["drift"].update(window_size=WINDOW, min_window_size=WINDOW // 2)
    raw["monitor"]["trigger"].update(k=2, n=3, min_samples=WINDOW // 2, cooldown_windows=20)
    path = work / "model_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def customers(settings: Any) -> Any:
    """The customers to replay: the real CSV, or the synthetic stand-in (announced)."""
    from churn_inference.predict_cli import sample_customers

    frame, synthetic = sample_customers(settings, 10_000, seed=0)
    if synthetic:
        console.print("[bold yellow]*** SYNTHETIC customers: not the real Telco data set ***")
    return frame


def v2_body(frame: Any, request_id: str) -> dict[str, Any]:
    """The v2 request of `frame`'s customers (their ids and a request id)."""
    from churn_inference.client import v2_request

    return v2_request(frame, request_id=request_id)


def send(url: str, frame: Any, prefix: str, per_request: int = 10) -> int:
    """Customers through the v2 REST API (ids and request ids set); the requests answered 200."""
    ok = 0
    session = requests.Session()
    for start in range(0, len(frame), per_request):
        chunk = frame.iloc[start : start + per_request]
        r = session.post(
            f"{url}/v2/models/churn/infer",
            json=v2_body(chunk, f"{prefix}-{start}"),
            timeout=30,
        )
        ok += r.status_code == 200
    return ok


def shifted(frame: Any) -> Any:
    """The shifted population: everyone month-to-month, tenure 70% shorter."""
    import pandas as pd

    out = frame.copy()
    out["Contract"] = "Month-to-month"
    tenure = (pd.to_numeric(out["tenure"]) * 0.3).round().astype(int)
    out["tenure"] = tenure
    charges = tenure * pd.to_numeric(out["MonthlyCharges"])
    out["TotalCharges"] = charges.round(2)
    return out


def monitor_status(url: str) -> dict[str, Any]:
    """The drift service's `GET /status`."""
    return dict(requests.get(f"{url}/status", timeout=10).json())


def windows_closed(status: dict[str, Any]) -> int:
    """The id of the newest closed window (windows are numbered from 1)."""
    return max((w["id"] for w in status["recent_windows"]), default=0)


def main() -> int:
    """Run the demo in CHURN_ARTIFACT_ROOT/demo; stop every process at the end."""
    from churn_core.settings import Settings

    settings = Settings()
    root = Path(settings.artifact_root)
    if not root.is_absolute():
        root = REPO / root
    work = root / "demo"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tracking = settings.mlflow_tracking_uri
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    demo = Demo(work, env, [sys.executable, "-m", "churn_core.cli"])
    try:
        return story(demo, settings, tracking)
    finally:
        demo.stop_all()


def story(demo: Demo, settings: Any, tracking: str) -> int:  # noqa: C901, PLR0915
    """The demo's steps, in order."""
    from mlflow.tracking import MlflowClient

    from churn_core.config import load_config

    work = demo.work
    client = MlflowClient(tracking_uri=tracking)
    name = load_config(settings.config_path).registry.model_name

    def versions() -> list[Any]:
        try:
            return sorted(
                client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)
            )
        except Exception:  # noqa: BLE001 - a fresh registry has no tables yet
            return []

    with demo.step("train and register the champion") as result:
        before = len(versions())
        extra = shlex.split(os.environ.get("DEMO_TRAIN_ARGS", ""))
        output = demo.run("pipeline", "run", "--local", *extra)
        console.print("\n".join(line for line in output.splitlines() if line.strip())[-1800:])
        registered = versions()
        if len(registered) <= before:
            raise SystemExit("demo: the training run registered no model version")
        champion = client.get_model_version_by_alias(name, "champion")
        result.append(f"{name} v{champion.version} is the champion")

    config_path = demo_config(work, settings)
    monitor_port, http_port, grpc_port = free_port(), free_port(), free_port()
    monitor_url = f"http://127.0.0.1:{monitor_port}"
    serve_url = f"http://127.0.0.1:{http_port}"
    with demo.step("start the drift service and the champion's server, logging to it") as result:
        log = demo.start(
            "monitor",
            "monitor", "serve",
            "--model-uri", f"models:/{name}/{champion.version}",
            "--port", str(monitor_port),
            "--db-url", f"sqlite:///{work / 'monitor.db'}",
            "--launch", "local",
            "--run-dir", str(work / "runs"),
            env={"CHURN_CONFIG_PATH": str(config_path)},
        )  # fmt: skip
        wait_ready(f"{monitor_url}/readyz", log)
        log = demo.start(
            "serve",
            "serve",
            "--model-uri", f"models:/{name}/{champion.version}",
            "--http-port", str(http_port),
            "--grpc-port", str(grpc_port),
            "--log-url", f"{monitor_url}/",
        )  # fmt: skip
        wait_ready(f"{serve_url}/v2/models/{name}/ready", log)
        result.append(f"churn serve {serve_url} (gRPC 127.0.0.1:{grpc_port}) -> {monitor_url}")
        console.print(f"drift windows of {WINDOW} customers; trigger: 2 bad of the last 3 windows")

    with demo.step(
        "five customers over the v2 API: probability, reasons, suggestions, what-ifs"
    ) as result:
        console.print(demo.run("predict", "--sample", "5", "--explain", "--url", serve_url))
        result.append("5 customers scored and explained")

    frame = customers(settings)
    calm = frame.sample(2 * WINDOW, random_state=1)
    with demo.step("replay unshifted customers through the logging path") as result:
        send(serve_url, calm, "calm")
        deadline = time.monotonic() + 60
        while windows_closed(status := monitor_status(monitor_url)) < 2:
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: the drift service closed no window: {status}")
            time.sleep(0.3)
        drifted = [w for w in status["recent_windows"] if w["drift"]]
        result.append(
            f"{windows_closed(status)} windows, {len(drifted)} drifted, "
            f"trigger {status['trigger_state']}"
        )
        console.print(result[-1])

    with demo.step("replay a shifted population until drift is confirmed") as result:
        trigger = None
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("shifted windows", total=None)
            for i in range(8):
                send(serve_url, shifted(frame.sample(WINDOW, random_state=10 + i)), f"shift{i}")
                deadline = time.monotonic() + 60
                while windows_closed(status := monitor_status(monitor_url)) < 3 + i:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"demo: no window closed: {status}")
                    time.sleep(0.3)
                progress.advance(task)
                if status["triggers"]:
                    trigger = status["triggers"][0]
                    break
        if trigger is None:
            raise SystemExit(f"demo: the shifted traffic fired no trigger: {status}")
        console.print(f"[bold]trigger[/bold]: {trigger['reason']}")
        result.append(f"trigger after {i + 1} shifted windows; run {trigger['run_id']}")

    with demo.step(
        "the triggered training run: challenger trained, gated and registered"
    ) as result:
        deadline = time.monotonic() + 600
        with Progress(console=console, transient=True) as progress:
            progress.add_task(f"training run {trigger['run_id']}", total=None)
            while len(versions()) <= len(registered):
                if time.monotonic() > deadline:
                    raise SystemExit("demo: the triggered run registered nothing in 10 minutes")
                time.sleep(2)
        challenger = versions()[-1]
        run = client.get_run(challenger.run_id)
        promoted = "champion" in (client.get_model_version(name, challenger.version).aliases or [])
        console.print(
            f"MLflow run {run.info.run_id}: trigger_reason = "
            f"{run.data.tags.get('trigger_reason', '')[:160]}"
        )
        console.print(f"gate: {run.data.tags.get('gate_reason', '')[:300]}")
        result.append(
            f"v{challenger.version} registered, "
            + ("promoted to champion by the gate" if promoted else "kept as challenger")
        )
        console.print(result[-1])

    with demo.step(
        "canary: the rollout gates compare stable and challenger on the same traffic"
    ) as result:
        result.append(rollout(demo, name, champion.version, challenger.version, frame))

    elapsed = time.monotonic() - demo.started
    table = Table(title=f"demo done in {elapsed:.0f} s")
    table.add_column("step")
    table.add_column("s", justify="right")
    table.add_column("result")
    for i, s in enumerate(demo.steps, 1):
        table.add_row(f"{i}. {s.name}", f"{s.seconds:.0f}", s.result)
    console.print(table)
    console.print(
        "where to look:\n"
        f"  MLflow UI:      .venv/bin/mlflow ui --backend-store-uri {tracking}\n"
        "  drift windows:  .venv/bin/churn monitor status "
        f"--db-url sqlite:///{work / 'monitor.db'}\n"
        f"  triggered run:  {work / 'runs'} (trigger JSON and log)\n"
        f"  logs:           {work}/*.log\n"
        f"  the bundles:    models:/{name}/{champion.version} and "
        f"models:/{name}/{challenger.version}"
    )
    return 0


def rollout(demo: Demo, name: str, stable_version: str, canary_version: str, frame: Any) -> str:
    """Two real servers, a real Prometheus, the controller's gates over the chart's object."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        message = "Prometheus is not installed (Debian package prometheus): the gates were not run"
        console.print(f"[yellow]{message}")
        return message
    from churn_core.config import RolloutConfig
    from churn_rollout.controller import Outcome, RolloutController, read_verdicts, traffic_split
    from churn_rollout.kube import InMemoryCluster
    from churn_rollout.prometheus import PrometheusSource, revision_scrape_config

    stable_rev, canary_rev = "churn-predictor-00001", "churn-predictor-00002"
    ports = {}
    for rev, version in ((stable_rev, stable_version), (canary_rev, canary_version)):
        port = free_port()
        log = demo.start(
            rev, "serve", "--model-uri", f"models:/{name}/{version}",
            "--http-port", str(port), "--no-grpc",
        )  # fmt: skip
        wait_ready(f"http://127.0.0.1:{port}/v2/models/{name}/ready", log)
        ports[rev] = port
    prom_port = free_port()
    prom_dir = demo.work / "prometheus"
    prom_dir.mkdir()
    scrape = revision_scrape_config({rev: f"127.0.0.1:{p}" for rev, p in ports.items()})
    (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(scrape))
    with open(demo.work / "prometheus.log", "wb") as log_file:
        demo.processes.append(
            subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={prom_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={prom_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    prom_url = f"http://127.0.0.1:{prom_port}"
    wait_ready(f"{prom_url}/-/ready", demo.work / "prometheus.log")
    console.print(
        f"Prometheus {prom_url} scrapes {stable_rev} (v{stable_version}) "
        f"and {canary_rev} (v{canary_version})"
    )

    isvc = rendered_inferenceservice()
    cluster = InMemoryCluster([isvc])
    # differences a demo's few hundred requests per revision can tell apart (the production
    # defaults need about a thousand requests per revision: rollout/README.md)
    config = RolloutConfig(
        error_rate_difference=0.2,
        positive_rate_difference=0.2,
        ks_distance=0.4,
        latency_ratio=20.0,
        drift=False,
        deadline_seconds=600,
    )
    source = PrometheusSource(prom_url, name, "revision")
    ctl = RolloutController(
        cluster, isvc["metadata"]["name"], "churn", config, source, emit=console.print
    )
    from mlflow.tracking import MlflowClient

    uri = MlflowClient(tracking_uri=demo.env.get("CHURN_MLFLOW_TRACKING_URI") or None)
    uri = uri.get_model_version_download_uri(name, canary_version)
    outcome = ctl.start(uri, expect_revision=stable_rev)
    sent = {stable_rev: 0, canary_rev: 0}
    for _ in range(40):
        outcome = ctl.step()
        if outcome in (Outcome.PROMOTED, Outcome.ROLLED_BACK, Outcome.INCONCLUSIVE):
            break
        if outcome in (Outcome.OPENED, Outcome.HELD, Outcome.STEPPED):
            split = traffic_split(ctl.read())
            console.print(f"traffic {split}: replaying the same customers to both revisions")
            sample = frame.sample(800, random_state=sent[stable_rev])
            for rev in ports:
                sent[rev] += send(
                    f"http://127.0.0.1:{ports[rev]}", sample, f"{rev}-{sent[rev]}", per_request=4
                )
            wait_scraped(prom_url, sent)
    verdicts = read_verdicts(ctl.read()) or {}
    for gate in verdicts.get("gates", []):
        console.print(f"  {gate['gate']:>16}: {gate['verdict']}  {gate.get('reason', '')[:110]}")
    final = traffic_split(ctl.read())
    return f"{outcome.value}: traffic {final}"


def rendered_inferenceservice() -> dict[str, Any]:
    """The chart's InferenceService with its default values (helm-python-sdk, no helm binary)."""
    import helm_python as helm

    with helm.Chart.load(REPO / "helm" / "churn") as chart:
        out = chart.render({}, name="churn", namespace="churn", is_install=True, is_upgrade=False)
    for path, text in out.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc and doc.get("kind") == "InferenceService":
                    return dict(doc)
    raise SystemExit("demo: the chart renders no InferenceService")


def wait_scraped(prom_url: str, sent: dict[str, int], timeout: float = 30.0) -> None:
    """Wait until Prometheus holds each revision's request count."""
    deadline = time.monotonic() + timeout
    for rev, n in sent.items():
        query = f'sum(request_preprocess_seconds_count{{revision="{rev}"}})'
        while time.monotonic() < deadline:
            r = requests.get(f"{prom_url}/api/v1/query", params={"query": query}, timeout=5).json()
            result = r["data"]["result"]
            if result and float(result[0]["value"][1]) >= n:
                break
            time.sleep(0.3)


if __name__ == "__main__":
    sys.exit(main())
