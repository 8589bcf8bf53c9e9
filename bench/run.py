"""Serving benchmark: `churn serve` (KServe ModelServer) beside MLServer 1.7.1, in one run.

    make bench                       # or: .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --bundle path/to/bundle --skip-mlserver

Measures, for one XGBoost bundle (built here from the real data when
CHURN_DATA_URI is set, else the synthetic stand-in, unless --bundle names one):

* the floor: in-process `ChurnModel.predict_proba_columns` on one row;
* `churn serve`: single-row latency p50/p99 at concurrency 1 over REST and
  gRPC, throughput at concurrency 8 and 32, a 1,000-row batch, an
  explanation (v1 `:explain` and the v2 `<name>-explainer`);
* the same server with KServe's stock v2 REST route (`--kserve-rest`);
* Seldon MLServer 1.7.1 with its sklearn runtime serving the same fitted
  pipeline (as an sklearn Pipeline in a joblib file), from its own venv
  (bench/.mlserver-venv: MLServer pins fastapi<0.116, KServe 0.20 needs 0.165).

Servers run with OMP_NUM_THREADS=1; the load comes from a separate process
(bench/loadgen.py, asyncio + aiohttp / grpc.aio). Prints a table and writes
JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

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
TARGETS = {
    "rest_p50_ms": 3.0,
    "rest_p99_ms": 10.0,
    "grpc_p50_ms": 2.0,
    "batch_1000_p50_ms": 20.0,
    "explain_p50_ms": 10.0,
    "p50_vs_mlserver_max": 0.25,
    "c32_vs_mlserver_min": 4.0,
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    from tests.fixtures.ports import free_port as _free

    return _free()


def wait_http(url: str, timeout: float = 90.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- payloads ---------------------------------------------------------------------------


def v2_body(frame: Any, mlserver: bool = False) -> dict[str, Any]:
    from churn_model.contract import FEATURE_COLUMNS, Categorical

    inputs = []
    for col in FEATURE_COLUMNS:
        values = frame[col.name].tolist()
        tensor: dict[str, Any]
        if isinstance(col, Categorical):
            tensor = {"datatype": "BYTES", "data": values}
            if mlserver:  # MLServer's pandas codec keeps BYTES as bytes unless told "str"
                tensor["parameters"] = {"content_type": "str"}
        elif col.integer:
            tensor = {"datatype": "INT64", "data": [int(v) for v in values]}
        else:
            tensor = {"datatype": "FP64", "data": [None if v != v else float(v) for v in values]}
        inputs.append({"name": col.name, "shape": [len(values)], **tensor})
    body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    if mlserver:
        body["outputs"] = [{"name": "predict_proba"}]
    return body


def grpc_request(frame: Any, model: str, mlserver: bool = False) -> bytes:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    body = v2_body(frame, mlserver=mlserver)
    req = pb.ModelInferRequest(model_name=model)
    req.parameters["content_type"].string_param = "pd"
    for tensor in body["inputs"]:
        t = req.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        for key, value in (tensor.get("parameters") or {}).items():
            t.parameters[key].string_param = value
        if tensor["datatype"] == "BYTES":
            t.contents.bytes_contents.extend(v.encode() for v in tensor["data"])
        elif tensor["datatype"] == "INT64":
            t.contents.int64_contents.extend(tensor["data"])
        else:
            t.contents.fp64_contents.extend(
                float("nan") if v is None else v for v in tensor["data"]
            )
    for out in body.get("outputs", []):
        req.outputs.add(name=out["name"])
    return bytes(req.SerializeToString())


class Payloads:
    def __init__(self, workdir: Path, one: Any, batch: Any) -> None:
        self.dir = workdir
        self.one, self.batch = one, batch

    def file(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def rest(self, frame: Any, tag: str, mlserver: bool = False) -> str:
        return self.file(f"{tag}.json", json.dumps(v2_body(frame, mlserver)).encode())

    def grpc(self, frame: Any, model: str, tag: str, mlserver: bool = False) -> str:
        return self.file(f"{tag}.pb", grpc_request(frame, model, mlserver))


def loadgen(mode: str, target: str, payload: str, **kw: Any) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "loadgen.py"), mode, target, payload]
    for key, value in kw.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return dict(json.loads(out.stdout))


def trained_xgboost_bundle(directory: Path, train: Any) -> Path:
    """An XGBoost bundle fitted by the training code with model_config.yaml (early stopping,
    monotone constraints), the transform as the features stage fits it."""
    import io

    from churn_components.registry.package import BACKGROUND, input_schema
    from churn_components.training.train import fitter, labels
    from churn_core.config import load_config
    from churn_model.bundle import FORMAT, model_files, write_bundle
    from churn_model.features import ChurnFeatures
    from churn_model.model import ChurnModel

    config = load_config(REPO / "model_config.yaml")
    features = ChurnFeatures(tuple(config.features.tenure_bands)).fit(train)
    X = features.transform(train)  # noqa: N806
    names = [str(n) for n in features.get_feature_names_out()]
    scorer = fitter("xgboost", config)(X, labels(train), config.split.seed, names)
    model = ChurnModel(features=features, estimator=scorer, threshold=0.4)
    rows = np.random.default_rng(0).choice(len(X), size=config.explainer.background_rows)
    buf = io.BytesIO()
    np.save(buf, X[rows])
    meta = {
        "format": FORMAT,
        "name": "churn",
        "version": "bench",
        "kind": "xgboost",
        "threshold": 0.4,
        "input_schema": input_schema(),
        "explainer": {"background": BACKGROUND},
        "trees": int(scorer.booster.num_boosted_rounds()),
    }
    files = {**model_files(model), BACKGROUND: buf.getvalue()}
    return write_bundle(directory, files, meta)


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("CHURN_BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    for unit in ("us", "ms", "s"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _UNITS[unit]
    raise ValueError(text)


def wrk(url: str, body: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """REST load with wrk (C, one thread): percentiles from its --latency distribution."""
    script = Path(body).with_suffix(".lua")
    script.write_text(WRK_LUA)
    subprocess.run(  # warm-up
        ["wrk", "-t1", f"-c{concurrency}", "-d1s", "-s", str(script), url],
        check=True,
        capture_output=True,
        env={**os.environ, "CHURN_BENCH_BODY": body},
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "CHURN_BENCH_BODY": body},
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    result: dict[str, Any] = {"client": "wrk"}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            result[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif line.startswith("Requests/sec:"):
            result["throughput_rps"] = float(parts[1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
    return result


def rest_load(url: str, body: str, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """wrk when installed (apt-get install wrk), else the Python load generator."""
    if shutil.which("wrk") and not args.python_client:
        return wrk(url, body, concurrency, args.seconds)
    if concurrency == 1:
        res = loadgen("rest", url, body, requests=args.requests, warmup=200)
    else:
        res = loadgen("rest", url, body, concurrency=concurrency, seconds=args.seconds, warmup=100)
    return {**res, "client": "aiohttp"}


# -- the floor --------------------------------------------------------------------------


def floor(bundle: Path, one: Any, batch: Any, n: int = 3000) -> dict[str, Any]:
    from churn_inference.loading import open_bundle
    from churn_model.contract import FEATURE_NAMES

    served = open_bundle(str(bundle))
    model = served.model

    def cols(frame: Any) -> dict[str, np.ndarray]:
        return {
            c: frame[c].to_numpy(dtype=object if frame[c].dtype == object else np.float64)
            for c in FEATURE_NAMES
        }

    one_cols, batch_cols = cols(one), cols(batch)

    def timeit(fn: Any, reps: int) -> dict[str, float]:
        for _ in range(min(200, reps)):
            fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        ms = np.asarray(times) * 1000
        return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}

    X = model.features.transform_columns(one_cols)  # noqa: N806
    booster = getattr(model.estimator, "original", None)  # the compiled trees' booster
    extra = (
        {"booster_inplace_predict_1_row": timeit(lambda: booster.score(X), n)} if booster else {}
    )
    return {
        **extra,
        "predict_proba_columns_1_row": timeit(lambda: model.predict_proba_columns(one_cols), n),
        "transform_columns_1_row": timeit(lambda: model.features.transform_columns(one_cols), n),
        "estimator_1_row": timeit(lambda: model.estimator.score(X), n),
        "predict_proba_dataframe_1_row": timeit(lambda: model.predict_proba(one), n // 3),
        "predict_proba_columns_1000_rows": timeit(
            lambda: model.predict_proba_columns(batch_cols), 100
        ),
        "explain_1_row": timeit(lambda: served.explainer.explain_columns(one_cols), n // 3),
    }


# -- servers ----------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start_churn(bundle: Path, workdir: Path, extra: list[str]) -> tuple[Any, str, str]:
    http, grpc_port = free_port(), free_port()
    log_file = open(workdir / f"churn-serve-{http}.log", "wb")  # noqa: SIM115
    cmd = [sys.executable, "-m", "churn_inference", "--model-uri", str(bundle)]
    cmd += ["--http-port", str(http), "--grpc-port", str(grpc_port), *extra]
    proc = subprocess.Popen(
        cmd, stdout=log_file, stderr=subprocess.STDOUT, env=server_env(), cwd=REPO
    )
    url = f"http://127.0.0.1:{http}"
    wait_http(f"{url}/v2/models/churn/ready", proc=proc)
    return proc, url, f"127.0.0.1:{grpc_port}"


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


def start_mlserver(bundle: Path, workdir: Path) -> tuple[Any, str, str]:
    import joblib
    from churn_sklearn import pipeline_of

    from churn_model.bundle import load_model

    exe = ensure_mlserver_venv()
    model, _ = load_model(bundle)
    root = workdir / "mlserver"
    model_dir = root / "churn"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline_of(model), model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "churn",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http,
                "grpc_port": grpc_port,
                "metrics_port": metrics,
                "debug": False,
            }
        )
    )
    # the pickled pipeline needs churn_components / churn_core and churn_sklearn importable
    pkgs = root / "pythonpath"
    pkgs.mkdir(exist_ok=True)
    for name, folder in (("churn_components", "components"), ("churn_core", "core")):
        link = pkgs / name
        if not link.exists():
            link.symlink_to(REPO / folder)
    shutil.copy(BENCH / "churn_sklearn.py", pkgs / "churn_sklearn.py")
    env = {**server_env(), "PYTHONPATH": str(pkgs)}
    log_file = open(workdir / "mlserver.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(exe), "start", str(root)], stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=root
    )
    url = f"http://127.0.0.1:{http}"
    wait_http(f"{url}/v2/models/churn/ready", timeout=120, proc=proc)
    return proc, url, f"127.0.0.1:{grpc_port}"


# -- measurements -----------------------------------------------------------------------


def measure_server(
    name: str,
    url: str,
    grpc_target: str | None,
    payloads: Payloads,
    args: argparse.Namespace,
    mlserver: bool = False,
    explain: bool = False,
    batch: bool = True,
) -> dict[str, Any]:
    infer = f"{url}/v2/models/churn/infer"
    one = payloads.rest(payloads.one, f"{name}-one", mlserver)
    out: dict[str, Any] = {}
    log(f"{name}: REST single row, concurrency 1")
    out["rest_c1"] = rest_load(infer, one, 1, args)
    if grpc_target:
        log(f"{name}: gRPC single row, concurrency 1")
        pb = payloads.grpc(payloads.one, "churn", f"{name}-one", mlserver)
        out["grpc_c1"] = loadgen("grpc", grpc_target, pb, requests=args.requests, warmup=200)
    for c in (8, 32):
        log(f"{name}: REST throughput, concurrency {c}")
        out[f"rest_c{c}"] = rest_load(infer, one, c, args)
        if grpc_target and not mlserver:
            log(f"{name}: gRPC throughput, concurrency {c}")
            pb = payloads.grpc(payloads.one, "churn", f"{name}-one", mlserver)
            out[f"grpc_c{c}"] = loadgen(
                "grpc", grpc_target, pb, concurrency=c, seconds=args.seconds, warmup=100
            )
    if batch:
        log(f"{name}: 1,000-row batch")
        many = payloads.rest(payloads.batch, f"{name}-batch", mlserver)
        out["rest_batch_1000"] = loadgen(
            "rest", infer, many, requests=args.batch_requests, warmup=5
        )
        if grpc_target:
            pb = payloads.grpc(payloads.batch, "churn", f"{name}-batch", mlserver)
            out["grpc_batch_1000"] = loadgen(
                "grpc", grpc_target, pb, requests=args.batch_requests, warmup=5
            )
    if explain:
        log(f"{name}: explanations")
        from tests.fixtures.model_server import instances

        v1 = payloads.file(
            "explain-v1.json", json.dumps({"instances": instances(payloads.one)}).encode()
        )
        out["explain_v1_c1"] = loadgen(
            "rest", f"{url}/v1/models/churn:explain", v1, requests=args.requests // 2, warmup=100
        )
        out["explain_v2_c1"] = loadgen(
            "rest",
            f"{url}/v2/models/churn-explainer/infer",
            one,
            requests=args.requests // 2,
            warmup=100,
        )
    return out


def parity(url: str, frame: Any, expected: np.ndarray, mlserver: bool) -> float:
    import requests

    r = requests.post(f"{url}/v2/models/churn/infer", json=v2_body(frame, mlserver), timeout=60)
    r.raise_for_status()
    data = np.asarray(r.json()["outputs"][0]["data"], dtype=np.float64)
    got = data.reshape(len(frame), -1)[:, -1]
    return float(np.abs(got - expected).max())


# -- report -----------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rows = []

    def add(label: str, value: float | None, unit: str, target: str = "") -> None:
        shown = "-" if value is None else f"{value:.2f}"
        rows.append(f"{label:<58} {shown:>10} {unit:<6} {target}")

    floor_ = results["floor"]
    add(
        "in-process predict_proba_columns, 1 row p50 (floor)",
        floor_["predict_proba_columns_1_row"]["p50_ms"],
        "ms",
    )
    add("  of which transform_columns p50", floor_["transform_columns_1_row"]["p50_ms"], "ms")
    add("  of which estimator p50", floor_["estimator_1_row"]["p50_ms"], "ms")
    if "booster_inplace_predict_1_row" in floor_:
        add(
            "  (the booster's own inplace_predict, 1 row p50)",
            floor_["booster_inplace_predict_1_row"]["p50_ms"],
            "ms",
        )
    add(
        "in-process predict_proba(DataFrame), 1 row p50",
        floor_["predict_proba_dataframe_1_row"]["p50_ms"],
        "ms",
    )
    add("in-process 1,000 rows p50", floor_["predict_proba_columns_1000_rows"]["p50_ms"], "ms")
    add("in-process explanation, 1 row p50", floor_["explain_1_row"]["p50_ms"], "ms")
    for key, label in (
        ("churn", "churn serve (KServe)"),
        ("churn_kserve_route", "churn serve, KServe's stock REST route"),
        ("mlserver", "MLServer 1.7.1 sklearn"),
    ):
        r = results.get(key)
        if not r:
            continue
        add(
            f"{label}: REST 1 row p50 (c=1)",
            r["rest_c1"]["p50_ms"],
            "ms",
            "<= 3" if key == "churn" else "",
        )
        add(
            f"{label}: REST 1 row p99 (c=1)",
            r["rest_c1"]["p99_ms"],
            "ms",
            "<= 10" if key == "churn" else "",
        )
        if "grpc_c1" in r:
            add(
                f"{label}: gRPC 1 row p50 (c=1)",
                r["grpc_c1"]["p50_ms"],
                "ms",
                "<= 2" if key == "churn" else "",
            )
            add(f"{label}: gRPC 1 row p99 (c=1)", r["grpc_c1"]["p99_ms"], "ms")
        for c in (8, 32):
            if f"rest_c{c}" in r:
                add(f"{label}: REST throughput c={c}", r[f"rest_c{c}"]["throughput_rps"], "req/s")
                add(f"{label}: REST p50 at c={c}", r[f"rest_c{c}"]["p50_ms"], "ms")
            if f"grpc_c{c}" in r:
                add(f"{label}: gRPC throughput c={c}", r[f"grpc_c{c}"]["throughput_rps"], "req/s")
        if "rest_batch_1000" in r:
            add(
                f"{label}: REST 1,000-row batch p50",
                r["rest_batch_1000"]["p50_ms"],
                "ms",
                "<= 20" if key == "churn" else "",
            )
        if "grpc_batch_1000" in r:
            add(f"{label}: gRPC 1,000-row batch p50", r["grpc_batch_1000"]["p50_ms"], "ms")
        if "explain_v1_c1" in r:
            add(
                f"{label}: XGBoost explanation v1 :explain p50",
                r["explain_v1_c1"]["p50_ms"],
                "ms",
                "<= 10",
            )
            add(
                f"{label}: XGBoost explanation v2 explainer p50", r["explain_v2_c1"]["p50_ms"], "ms"
            )
    for key, value in results.get("ratios", {}).items():
        add(key, value, "x")
    for key, value in results.get("parity_max_abs_diff", {}).items():
        rows.append(f"{'parity max |served - offline| ' + key:<58} {value:>10.2e}")
    return "\n".join(rows)


def check_targets(results: dict[str, Any]) -> dict[str, bool]:
    churn, ml = results["churn"], results.get("mlserver")
    checks = {
        "REST p50 <= 3 ms": churn["rest_c1"]["p50_ms"] <= TARGETS["rest_p50_ms"],
        "REST p99 <= 10 ms": churn["rest_c1"]["p99_ms"] <= TARGETS["rest_p99_ms"],
        "gRPC p50 <= 2 ms": churn["grpc_c1"]["p50_ms"] <= TARGETS["grpc_p50_ms"],
        "1,000 rows <= 20 ms": churn["rest_batch_1000"]["p50_ms"] <= TARGETS["batch_1000_p50_ms"],
        "XGBoost explanation p50 <= 10 ms": churn["explain_v1_c1"]["p50_ms"]
        <= TARGETS["explain_p50_ms"],
    }
    if ml:
        ratios = results["ratios"]
        checks["REST p50 <= 1/4 of MLServer's"] = (
            ratios["REST p50 churn / MLServer"] <= TARGETS["p50_vs_mlserver_max"]
        )
        checks["c=32 throughput >= 4x MLServer's"] = (
            ratios["REST c=32 throughput churn / MLServer"] >= TARGETS["c32_vs_mlserver_min"]
        )
    return checks


def _trees(model: Any) -> int | None:
    booster = getattr(model.estimator, "booster", None)
    return int(booster.num_boosted_rounds()) if booster is not None else None


def report(results: dict[str, Any], out: Path) -> None:
    b = results["bundle"]
    trees = f", {b['trees']} trees" if b.get("trees") else ""
    print(f"bundle: {b['kind']}{trees}, fitted on {b['data']} data; servers OMP_NUM_THREADS=1")
    client = results.get("churn", {}).get("rest_c1", {}).get("client", "aiohttp")
    print(f"load: REST c=1/8/32 from {client}; gRPC, batches, explanations from Python asyncio")
    print(table(results))
    print()
    for name, ok in results["targets"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print(f"\nresults: {out}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, help="an XGBoost bundle (default: build one)")
    parser.add_argument(
        "--fixture-bundle",
        action="store_true",
        help="use the tests' small fixture XGBoost (120 depth-3 trees) instead of a trained one",
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per c=1 latency run")
    parser.add_argument("--batch-requests", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per throughput run")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument(
        "--python-client", action="store_true", help="REST load from aiohttp even if wrk exists"
    )
    parser.add_argument("--skip-kserve-route", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--report", type=Path, help="print the table of an earlier results file")
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()), args.report)
        return 0
    os.environ["OMP_NUM_THREADS"] = "1"

    from tests.fixtures.bundles import build_bundle, customers, split
    from tests.fixtures.data import real_csv_path

    work = Path(tempfile.mkdtemp(prefix="churn-bench-"))
    train, held_out = split(customers(rows=7043, seed=11, real=True))
    if args.bundle:
        bundle = args.bundle
    elif args.fixture_bundle:
        bundle = build_bundle(work / "bundle", "xgboost", train, version="bench")
    else:
        log("fitting an XGBoost bundle with the training code and model_config.yaml")
        bundle = trained_xgboost_bundle(work / "bundle", train)
    one, batch = (
        held_out.iloc[[0]],
        held_out.sample(1000, replace=len(held_out) < 1000, random_state=0),
    )
    payloads = Payloads(work, one, batch)
    from churn_model.bundle import load_model

    model, meta = load_model(bundle)
    check_rows = held_out.iloc[:200]
    expected = model.predict_proba(check_rows)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "bundle": {
            "path": str(bundle),
            "kind": meta.get("kind"),
            "trees": _trees(model),
            "data": "real" if real_csv_path() else "synthetic",
        },
        "settings": vars(args)
        | {"bundle": str(args.bundle) if args.bundle else None, "out": str(args.out)},
        "parity_max_abs_diff": {},
    }
    log("in-process floor")
    results["floor"] = floor(bundle, one, batch)

    proc, url, grpc_target = start_churn(bundle, work, [])
    try:
        results["parity_max_abs_diff"]["churn serve"] = parity(url, check_rows, expected, False)
        results["churn"] = measure_server("churn", url, grpc_target, payloads, args, explain=True)
    finally:
        stop(proc)
    if not args.skip_kserve_route:
        proc, url, _ = start_churn(bundle, work, ["--kserve-rest", "--no-grpc"])
        try:
            results["churn_kserve_route"] = measure_server(
                "kserve-route", url, None, payloads, args, batch=False
            )
        finally:
            stop(proc)
    if not args.skip_mlserver:
        proc, url, grpc_target = start_mlserver(bundle, work)
        try:
            results["parity_max_abs_diff"]["MLServer"] = parity(url, check_rows, expected, True)
            results["mlserver"] = measure_server(
                "mlserver", url, grpc_target, payloads, args, mlserver=True
            )
        finally:
            stop(proc)
        churn, ml = results["churn"], results["mlserver"]
        results["ratios"] = {
            "REST p50 churn / MLServer": churn["rest_c1"]["p50_ms"] / ml["rest_c1"]["p50_ms"],
            "gRPC p50 churn / MLServer": churn["grpc_c1"]["p50_ms"] / ml["grpc_c1"]["p50_ms"],
            "REST c=8 throughput churn / MLServer": churn["rest_c8"]["throughput_rps"]
            / ml["rest_c8"]["throughput_rps"],
            "REST c=32 throughput churn / MLServer": churn["rest_c32"]["throughput_rps"]
            / ml["rest_c32"]["throughput_rps"],
        }
    results["targets"] = check_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    report(results, out)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
