"""The servers the benchmark starts: `churn serve`, MLServer 1.7.1 (own venv), the event receiver.

Each runs as its own process with OMP_NUM_THREADS=1, bound to 127.0.0.1 on
free ports, its output in a log file of the run's work folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

MLSERVER_VENV = BENCH / ".mlserver-venv"
MLSERVER_PINS = [
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "numpy==1.26.4",
    "pandas==2.3.3",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "xgboost-cpu==3.2.0",
    # uvloop 0.22+ raises in asyncio.get_event_loop() without a loop, which MLServer
    # 1.7.1's inference-pool workers call at start: they die and the server exits
    "uvloop==0.21.0",
]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    from tests.fixtures.ports import free_port as _free

    return _free()


def server_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclass
class Server:
    """A started server process and where to reach it."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    grpc: str | None
    log_path: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)  # e.g. the receiver
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        for proc in [self.proc, *self.extra]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log_file in self.logs:
            log_file.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {proc.returncode} before {url}:\n{tail}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s (log: {log_path})")


def _popen(cmd: list[str], log_path: Path, **kw: Any) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log_file = open(log_path, "wb")  # noqa: SIM115 (closed by Server.stop)
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, **kw)
    return proc, log_file


# -- churn serve ------------------------------------------------------------------------


def churn_serve_options() -> str:
    """`churn serve --help` of the installed code (which options exist today)."""
    out = subprocess.run(
        [sys.executable, "-m", "churn_inference", "--help"],
        capture_output=True,
        text=True,
        env=server_env(),
        cwd=REPO,
        check=True,
    )
    return out.stdout


def start_churn(name: str, bundle: Path, workdir: Path, extra: list[str]) -> Server:
    http, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "churn_inference", "--model-uri", str(bundle)]
    cmd += ["--http-port", str(http), "--grpc-port", str(grpc_port), *extra]
    log_path = workdir / f"{name}-{http}.log"
    proc, log_file = _popen(cmd, log_path, env=server_env(), cwd=REPO)
    url = f"http://127.0.0.1:{http}"
    server = Server(name, proc, url, None, log_path, logs=[log_file])
    try:
        wait_http(f"{url}/v2/models/churn/ready", 90, proc, log_path)
    except BaseException:
        server.stop()
        raise
    if "--no-grpc" not in extra:
        server.grpc = f"127.0.0.1:{grpc_port}"
    return server


# -- the CloudEvents receiver -----------------------------------------------------------


def start_receiver(workdir: Path) -> tuple[subprocess.Popen[bytes], str, IO[bytes]]:
    port = free_port()
    log_path = workdir / f"receiver-{port}.log"
    proc, log_file = _popen(
        [sys.executable, str(BENCH / "receiver.py"), "--port", str(port)], log_path
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/stats", 30, proc, log_path)
    return proc, url, log_file


def start_churn_logging(name: str, bundle: Path, workdir: Path) -> tuple[Server, str]:
    """`churn serve --log-url` with a receiver; (server, receiver URL)."""
    receiver, url, receiver_log = start_receiver(workdir)
    try:
        server = start_churn(name, bundle, workdir, ["--log-url", f"{url}/"])
    except BaseException:
        receiver.send_signal(signal.SIGINT)
        receiver.wait(timeout=10)
        receiver_log.close()
        raise
    server.extra.append(receiver)
    server.logs.append(receiver_log)
    return server, url


# -- MLServer ---------------------------------------------------------------------------


def ensure_mlserver_venv() -> Path:
    exe = MLSERVER_VENV / "bin" / "mlserver"
    if exe.exists():
        return exe
    log(f"creating {MLSERVER_VENV} with {' '.join(MLSERVER_PINS)} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    pip = [str(MLSERVER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "pip>=24"], check=True)
    subprocess.run([*pip, *MLSERVER_PINS], check=True)
    return exe


def mlserver_repository(root: Path, joblib_file: Path, workers: int) -> Path:
    """A model repository for `mlserver start`: settings.json + churn/model-settings.json.

    `parallel_workers` is a server-level setting in MLServer 1.7.1 (settings.json
    or MLSERVER_PARALLEL_WORKERS; the model-level field is deprecated): 0 runs
    inference in the server process itself, N > 0 in a pool of N worker
    processes fed round-robin by the server process (default 1). `debug: false`
    turns the per-request access log off, as `churn serve` has it by default.
    """
    model_dir = root / "churn"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(joblib_file, model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "churn",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": free_port(),
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "debug": False,
                "parallel_workers": workers,
            }
        )
    )
    # the pickled churn pipeline needs churn_model, churn_core and churn_sklearn importable
    pkgs = root / "pythonpath"
    pkgs.mkdir(exist_ok=True)
    for name, folder in (("churn_model", "model"), ("churn_core", "core")):
        link = pkgs / name
        if not link.exists():
            link.symlink_to(REPO / folder)
    shutil.copy(BENCH / "churn_sklearn.py", pkgs / "churn_sklearn.py")
    return root


def start_mlserver(name: str, joblib_file: Path, workdir: Path, workers: int) -> Server:
    exe = ensure_mlserver_venv()
    root = workdir / f"mlserver-{name}"
    if root.exists():
        shutil.rmtree(root)
    mlserver_repository(root, joblib_file, workers)
    settings = json.loads((root / "settings.json").read_text())
    env = {**server_env(), "PYTHONPATH": str(root / "pythonpath")}
    log_path = workdir / f"{name}-{settings['http_port']}.log"
    proc, log_file = _popen([str(exe), "start", str(root)], log_path, env=env, cwd=root)
    url = f"http://127.0.0.1:{settings['http_port']}"
    server = Server(
        name, proc, url, f"127.0.0.1:{settings['grpc_port']}", log_path, logs=[log_file]
    )
    try:
        wait_http(f"{url}/v2/models/churn/ready", 180, proc, log_path)
    except BaseException:
        server.stop()
        raise
    return server
