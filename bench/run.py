"""Serving benchmark: `churn serve` (KServe 0.20) beside Seldon MLServer 1.7.1, in one run.

    make bench                                   # or: .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --quick --skip-mlserver      # a smoke run (~1 min)
    .venv/bin/python bench/run.py --report bench/results/bench-<time>.json

One XGBoost bundle (fitted here by the training code with model_config.yaml, on
the real data when CHURN_DATA_URI is set, else the synthetic stand-in; or
--bundle) is served by:

* `churn serve` (our predictor in KServe's ModelServer), also with payload
  logging on (`--log-url` to bench/receiver.py, when the option exists) and
  with KServe's stock REST route (`--kserve-rest`);
* MLServer 1.7.1's sklearn runtime serving the same fitted pipeline (the
  bundle's objects as an sklearn Pipeline), at its best `parallel_workers`
  (0, 1 and 2 tried first; best = highest REST c=32 throughput);
* MLServer 1.7.1 serving a conventional scikit-learn pipeline
  (ColumnTransformer + XGBClassifier) fitted on the same rows, at its best
  `parallel_workers` too.

The servers take turns over --rounds rounds (A, B, C, A, B, C, ...): in each
round every server is started, checked for parity, measured and stopped, so
one server runs at a time. Every figure is reported as the median and the
spread (min-max) over the rounds. Any parity difference fails the run.
See bench/README.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from payloads import (  # noqa: E402
    Payloads,
    grpc_probabilities,
    grpc_request,
    rest_probabilities,
    v2_body,
)
from procstat import tree_cpu_seconds, tree_pids  # noqa: E402
from report import check_targets, ratios, render, summarize  # noqa: E402
from servers import (  # noqa: E402
    Server,
    churn_serve_options,
    log,
    start_churn,
    start_churn_logging,
    start_mlserver,
)

# max |served - offline| over the parity customers. churn serve answers FP32
# (rounding costs <= 3e-8 on a probability); MLServer answers FP64 from the same
# sklearn/xgboost versions as the offline predict_proba, so it can only be 0 or a bug.
TOLERANCE = 1e-6
PARITY_ROWS = 200
MLSERVER_WORKERS = (0, 1, 2)
BEST_BY = "rest_c32.throughput_rps"

# the load runs of each kind of server (see measure_run)
FULL_RUNS = (
    "rest_c1",
    "grpc_c1",
    "rest_c8",
    "rest_c32",
    "grpc_c8",
    "grpc_c32",
    "rest_batch_1000",
    "grpc_batch_1000",
)
CHURN_RUNS = (*FULL_RUNS, "explain_v1_c1", "explain_v2_c1")
LOGGING_RUNS = ("rest_c1", "rest_c32", "grpc_c32", "rest_batch_1000")
ROUTE_RUNS = ("rest_c1", "rest_c32")
SWEEP_RUNS = ("rest_c1", "rest_c32", "grpc_c32")


class ParityError(RuntimeError):
    """A server's answers differ from the offline model's."""


@dataclass(frozen=True)
class Plan:
    """How much load each figure gets."""

    rounds: int = 3
    seconds: float = 3.5  # per load run
    sweep_rounds: int = 1
    sweep_seconds: float = 3.0
    floor_reps: int = 3000


FULL = Plan()
QUICK = Plan(rounds=1, seconds=1.0, sweep_rounds=1, sweep_seconds=1.0, floor_reps=300)


@dataclass
class Config:
    """One server set-up the rounds measure."""

    key: str
    label: str
    runs: tuple[str, ...]
    flavour: str  # request/answer flavour: "churn" or "mlserver" (payloads.py)
    expected: np.ndarray  # the offline model's probabilities of the parity customers
    start: Callable[[], tuple[Server, str | None]]  # (server, event receiver URL or None)
    workers: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# -- the bundle and the reference pipeline ----------------------------------------------


def trained_xgboost_bundle(directory: Path, train: Any) -> Path:
    """An XGBoost bundle fitted by the training code with model_config.yaml (early stopping,
    monotone constraints), the transform as the features stage fits it.

    The one place the benchmark writes a bundle (format 2, `churn_model.bundle.model_files`).
    """
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


def sklearn_reference(train: Any, trees: int) -> Any:
    """The conventional pipeline, with model_config.yaml's tree settings and our tree count."""
    from churn_sklearn import reference_pipeline

    from churn_core.config import load_config

    config = load_config(REPO / "model_config.yaml")
    x = config.models.xgboost
    params = {
        "max_depth": x.max_depth,
        "learning_rate": x.learning_rate,
        "subsample": x.subsample,
        "colsample_bytree": x.colsample_bytree,
        "min_child_weight": x.min_child_weight,
        "reg_lambda": x.reg_lambda,
        "max_bin": x.max_bin,
    }
    return reference_pipeline(train, trees, params, config.split.seed)


def _trees(model: Any) -> int | None:
    booster = getattr(model.estimator, "booster", None)
    return int(booster.num_boosted_rounds()) if booster is not None else None


# -- load -------------------------------------------------------------------------------


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


def _wrk(url: str, body: str, concurrency: int, seconds: float, latency: bool) -> str:
    script = Path(body).with_suffix(".lua")
    script.write_text(WRK_LUA)
    # --timeout 30s: a slow answer is latency, not a socket error (wrk's default is 2 s)
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "30s"]
    cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, *(["--latency"] if latency else []), url],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "CHURN_BENCH_BODY": body},
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return out


@dataclass
class Meters:
    """What a load run bills besides latency: server CPU, receiver CPU and logged events."""

    server_pid: int
    receiver_pid: int = 0
    events_url: str = ""

    def loadgen_args(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"cpu_pid": self.server_pid}
        if self.events_url:
            kw |= {"events_url": self.events_url, "receiver_pid": self.receiver_pid}
        return kw

    def snapshot(self) -> tuple[float, float, int]:
        from receiver import wait_drained

        events = wait_drained(self.events_url) if self.events_url else 0
        receiver = tree_cpu_seconds(self.receiver_pid) if self.receiver_pid else 0.0
        return tree_cpu_seconds(self.server_pid), receiver, events


def wrk(url: str, body: str, concurrency: int, seconds: float, meters: Meters) -> dict[str, Any]:
    """REST load with wrk (C, one thread): percentiles from its --latency distribution."""
    _wrk(url, body, concurrency, 1, latency=False)  # warm-up
    before = meters.snapshot()
    out = _wrk(url, body, concurrency, seconds, latency=True)
    after = meters.snapshot()
    result: dict[str, Any] = {"client": "wrk"}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            result[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif line.startswith("Requests/sec:"):
            result["throughput_rps"] = float(parts[1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
    n = result["requests"]
    result["server_cpu_s"] = after[0] - before[0]
    result["server_cpu_ms_per_request"] = 1000.0 * (after[0] - before[0]) / n
    if meters.events_url:
        result["events"] = after[2] - before[2]
        result["events_per_request"] = result["events"] / n
        result["receiver_cpu_ms_per_request"] = 1000.0 * (after[1] - before[1]) / n
    return result


def loadgen(mode: str, target: str, payload: str, meters: Meters, **kw: Any) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "loadgen.py"), mode, target, payload]
    for key, value in (kw | meters.loadgen_args()).items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {mode} {target} failed:\n{out.stderr[-2000:]}")
    return {**json.loads(out.stdout), "client": "aiohttp" if mode == "rest" else "grpc.aio"}


class Load:
    """Runs the named load runs against one server."""

    def __init__(self, args: argparse.Namespace, payloads: Payloads) -> None:
        self.args = args
        self.payloads = payloads
        self.use_wrk = bool(shutil.which("wrk")) and not args.python_client

    def rest(self, url: str, body: str, c: int, seconds: float, meters: Meters) -> dict[str, Any]:
        """wrk when installed (apt-get install wrk), else the Python load generator."""
        if self.use_wrk:
            return wrk(url, body, c, seconds, meters)
        return loadgen("rest", url, body, meters, concurrency=c, seconds=seconds)

    def run(
        self, name: str, server: Server, flavour: str, meters: Meters, seconds: float
    ) -> dict[str, Any]:
        """One named load run; each lasts `seconds` after a warm-up of at most 1 s."""
        p = self.payloads
        infer = f"{server.url}/v2/models/churn/infer"
        timed = {"seconds": seconds}
        if name == "explain_v1_c1":
            url = f"{server.url}/v1/models/churn:explain"
            return loadgen("rest", url, p.explain_v1(), meters, **timed)
        if name == "explain_v2_c1":
            url = f"{server.url}/v2/models/churn-explainer/infer"
            return loadgen("rest", url, p.rest("one", flavour), meters, **timed)
        kind, _, what = name.partition("_")
        if what == "batch_1000":
            if kind == "rest":
                return loadgen("rest", infer, p.rest("batch", flavour), meters, **timed)
            return loadgen("grpc", str(server.grpc), p.grpc("batch", flavour), meters, **timed)
        c = int(what[1:])
        if kind == "rest":
            return self.rest(infer, p.rest("one", flavour), c, seconds, meters)
        pb = p.grpc("one", flavour)
        return loadgen("grpc", str(server.grpc), pb, meters, concurrency=c, **timed)


# -- parity -----------------------------------------------------------------------------


def _compare(config: Config, protocol: str, got: np.ndarray) -> float:
    expected = config.expected
    diff = np.abs(got - expected)
    worst = int(np.argmax(diff)) if len(diff) else 0
    if len(got) != len(expected) or not np.all(np.isfinite(got)) or diff.max() > TOLERANCE:
        raise ParityError(
            f"{config.label} over {protocol}: max |served - offline| = {diff.max():.3g} "
            f"> {TOLERANCE:g} on {len(expected)} held-out customers (customer {worst}: served "
            f"{got[worst]:.9f}, offline {expected[worst]:.9f}). Figures of a server whose "
            "answers differ from the model's compare nothing: fix the serving path first."
        )
    return float(diff.max())


def check_parity(server: Server, config: Config, frame: Any) -> dict[str, float | None]:
    """max |served - offline| over REST and gRPC; ParityError above TOLERANCE."""
    import grpc
    import requests
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    r = requests.post(
        f"{server.url}/v2/models/churn/infer", json=v2_body(frame, config.flavour), timeout=60
    )
    if r.status_code != 200:
        raise ParityError(f"{config.label}: REST answered {r.status_code}: {r.text[:300]}")
    out: dict[str, float | None] = {
        "rest": _compare(config, "REST", rest_probabilities(r.json(), len(frame), config.flavour))
    }
    out["grpc"] = None
    if server.grpc:
        with grpc.insecure_channel(server.grpc) as channel:
            answer = pbg.GRPCInferenceServiceStub(channel).ModelInfer(
                grpc_request(frame, "churn", config.flavour), timeout=60
            )
        got = grpc_probabilities(answer, len(frame), config.flavour)
        out["grpc"] = _compare(config, "gRPC", got)
    return out


# -- rounds -----------------------------------------------------------------------------


def measure_config(
    config: Config, load: Load, frame: Any, seconds: float, parity: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Start, check parity, run the load runs, stop: ({run: result}, processes in the tree)."""
    server, events_url = config.start()
    try:
        got = check_parity(server, config, frame)
        seen = parity.setdefault(config.key, {"rest": 0.0, "grpc": None, "checks": 0})
        seen["rest"] = max(seen["rest"], got["rest"] or 0.0)
        if got["grpc"] is not None:
            seen["grpc"] = max(seen["grpc"] or 0.0, got["grpc"])
        seen["checks"] += 1
        processes = len(tree_pids(server.pid))
        receiver_pid = server.extra[0].pid if server.extra else 0
        meters = Meters(server.pid, receiver_pid, events_url or "")
        runs = {}
        for name in config.runs:
            log(f"  {config.label}: {name}")
            runs[name] = load.run(name, server, config.flavour, meters, seconds)
        return runs, processes
    finally:
        server.stop()


def run_rounds(
    configs: list[Config],
    rounds: int,
    load: Load,
    frame: Any,
    seconds: float,
    parity: dict[str, Any],
    title: str,
) -> dict[str, dict[str, Any]]:
    """A, B, C, A, B, C, ...: each config once per round, restarted each time."""
    out: dict[str, dict[str, Any]] = {
        c.key: {"label": c.label, "workers": c.workers, **c.meta, "rounds": [], "processes": []}
        for c in configs
    }
    for r in range(rounds):
        for config in configs:
            log(f"{title} {r + 1}/{rounds}: {config.label}")
            runs, processes = measure_config(config, load, frame, seconds, parity)
            out[config.key]["rounds"].append(runs)
            out[config.key]["processes"].append(processes)
    for entry in out.values():
        entry["summary"] = summarize(entry["rounds"])
    return out


# -- the floor --------------------------------------------------------------------------


def floor(bundle: Path, one: Any, batch: Any, n: int) -> dict[str, Any]:
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
            lambda: model.predict_proba_columns(batch_cols), max(20, n // 30)
        ),
        "explain_1_row": timeit(lambda: served.explainer.explain_columns(one_cols), n // 3),
    }


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, help="an XGBoost bundle (default: fit one)")
    parser.add_argument(
        "--fixture-bundle",
        action="store_true",
        help="use the tests' small fixture XGBoost (120 depth-3 trees) instead of a trained one",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, short runs")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {FULL.rounds})")
    parser.add_argument("--seconds", type=float, help=f"seconds per load run ({FULL.seconds})")
    parser.add_argument("--sweep-rounds", type=int, help="passes of the MLServer workers sweep")
    parser.add_argument(
        "--mlserver-workers",
        default=",".join(map(str, MLSERVER_WORKERS)),
        help="parallel_workers values to try (default 0,1,2; one value: no sweep)",
    )
    parser.add_argument("--skip-mlserver", action="store_true", help="churn serve only")
    parser.add_argument("--skip-sklearn", action="store_true", help="no sklearn reference")
    parser.add_argument("--skip-logging", action="store_true", help="no payload-logging figures")
    parser.add_argument("--skip-kserve-route", action="store_true")
    parser.add_argument(
        "--python-client", action="store_true", help="REST load from aiohttp even if wrk exists"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--report", type=Path, help="print the table of an earlier results file")
    # shifts the offline answer of one parity customer: the run must fail (tests use it)
    parser.add_argument("--inject-parity-error", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    overrides = {
        k: getattr(args, k)
        for k in ("rounds", "seconds", "sweep_rounds")
        if getattr(args, k) is not None
    }
    return replace(plan, **overrides)


@dataclass
class Setup:
    """Everything the rounds share: data, the bundle, the pipelines, the payloads."""

    work: Path
    bundle: Path
    model: Any
    meta: dict[str, Any]
    train: Any
    check_rows: Any
    payloads: Payloads
    data: str


def prepare(args: argparse.Namespace) -> Setup:
    from churn_model.bundle import load_model
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
    model, meta = load_model(bundle)
    one = held_out.iloc[[0]]
    batch = held_out.sample(1000, replace=len(held_out) < 1000, random_state=0)
    return Setup(
        work=work,
        bundle=bundle,
        model=model,
        meta=meta,
        train=train,
        check_rows=held_out.iloc[:PARITY_ROWS],
        payloads=Payloads(work, one, batch),
        data="real" if real_csv_path() else "synthetic",
    )


def offline(values: np.ndarray, inject: bool) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).copy()
    if inject:
        out[0] += 1e-3
    return out


def logging_available() -> bool:
    return "--log-url" in churn_serve_options()


def churn_configs(
    args: argparse.Namespace, s: Setup, notes: list[str]
) -> tuple[list[Config], dict[str, str]]:
    """churn serve; with payload logging when `--log-url` exists; with KServe's REST route."""
    expected = offline(s.model.predict_proba(s.check_rows), args.inject_parity_error)
    skipped: dict[str, str] = {}
    configs = [
        Config(
            "churn",
            "churn serve",
            CHURN_RUNS,
            "churn",
            expected,
            lambda: (start_churn("churn", s.bundle, s.work, []), None),
        )
    ]
    if args.skip_logging:
        skipped["churn_logging"] = "--skip-logging"
    elif not logging_available():
        skipped["churn_logging"] = "`churn serve --help` lists no --log-url yet"
        notes.append(
            "payload logging on: skipped: `churn serve --help` lists no --log-url option yet "
            "(the figures appear once churn serve has it)"
        )
    else:
        configs.append(
            Config(
                "churn_logging",
                "churn serve, payload logging on",
                LOGGING_RUNS,
                "churn",
                expected,
                lambda: start_churn_logging("churn-logging", s.bundle, s.work),
            )
        )
    if not args.skip_kserve_route:
        configs.append(
            Config(
                "churn_kserve_route",
                "churn serve --kserve-rest",
                ROUTE_RUNS,
                "churn",
                expected,
                lambda: (
                    start_churn("kserve-route", s.bundle, s.work, ["--kserve-rest", "--no-grpc"]),
                    None,
                ),
            )
        )
    return configs, skipped


def mlserver_pipelines(args: argparse.Namespace, s: Setup) -> dict[str, dict[str, Any]]:
    """{key: {label, joblib, expected}} for the two MLServer pipelines."""
    import joblib
    from churn_sklearn import pipeline_of

    ours = s.work / "churn-pipeline.joblib"
    joblib.dump(pipeline_of(s.model), ours)
    pipelines = {
        "mlserver": {
            "label": "MLServer, churn pipeline",
            "joblib": ours,
            "expected": offline(s.model.predict_proba(s.check_rows), args.inject_parity_error),
            "parity_reference": "the bundle's ChurnModel.predict_proba (as churn serve)",
        }
    }
    if not args.skip_sklearn:
        log("fitting the sklearn reference: ColumnTransformer + XGBClassifier")
        trees = _trees(s.model) or 100
        reference = sklearn_reference(s.train, trees)
        path = s.work / "sklearn-pipeline.joblib"
        joblib.dump(reference, path)
        proba = reference.predict_proba(s.check_rows)[:, 1]
        pipelines["mlserver_sklearn"] = {
            "label": "MLServer, sklearn pipeline",
            "joblib": path,
            "expected": offline(proba, args.inject_parity_error),
            "parity_reference": "its own offline predict_proba",
            "trees": trees,
        }
    return pipelines


def mlserver_config(
    key: str, pipe: dict[str, Any], workers: int, work: Path, runs: tuple[str, ...]
) -> Config:
    name = f"{key}-w{workers}"
    return Config(
        key,
        f"{pipe['label']} (workers={workers})",
        runs,
        "mlserver",
        pipe["expected"],
        lambda: (start_mlserver(name, pipe["joblib"], work, workers), None),
        workers=workers,
        meta={"parity_reference": pipe["parity_reference"]},
    )


def sweep(
    pipelines: dict[str, dict[str, Any]],
    workers: list[int],
    plan: Plan,
    load: Load,
    s: Setup,
    parity: dict[str, Any],
) -> dict[str, Any]:
    """Each pipeline at each parallel_workers value, alternating; the best by BEST_BY."""
    configs = []
    for key, pipe in pipelines.items():
        for w in workers:
            config = mlserver_config(key, pipe, w, s.work, SWEEP_RUNS)
            configs.append(replace(config, key=f"{key}@{w}"))
    measured = run_rounds(
        configs, plan.sweep_rounds, load, s.check_rows, plan.sweep_seconds, parity, "sweep"
    )
    out: dict[str, Any] = {
        "criterion": f"highest median {BEST_BY}",
        "rounds": plan.sweep_rounds,
        "seconds": plan.sweep_seconds,
        "pipelines": {},
        "best": {},
    }
    for key in pipelines:
        entries = {}
        for w in workers:
            entry = measured[f"{key}@{w}"]
            entries[str(w)] = {
                "summary": entry["summary"],
                "rounds": entry["rounds"],
                "processes": max(entry["processes"]),
            }
        out["pipelines"][key] = entries
        out["best"][key] = max(workers, key=lambda w: entries[str(w)]["summary"][BEST_BY]["median"])
    # the sweep's parity checks count for the pipeline
    for key in pipelines:
        for w in workers:
            seen = parity.pop(f"{key}@{w}", None)
            if seen:
                mine = parity.setdefault(key, {"rest": 0.0, "grpc": None, "checks": 0})
                mine["rest"] = max(mine["rest"], seen["rest"])
                if seen["grpc"] is not None:
                    mine["grpc"] = max(mine["grpc"] or 0.0, seen["grpc"])
                mine["checks"] += seen["checks"]
    return out


def run(args: argparse.Namespace, plan: Plan) -> tuple[dict[str, Any], Path]:
    load_start = os.getloadavg()
    s = prepare(args)
    try:
        return measure_all(args, plan, s, load_start)
    finally:
        shutil.rmtree(s.work, ignore_errors=True)


def measure_all(
    args: argparse.Namespace, plan: Plan, s: Setup, load_start: tuple[float, float, float]
) -> tuple[dict[str, Any], Path]:
    """The floor, the MLServer sweep, the rounds; the results written to args.out."""
    load = Load(args, s.payloads)
    notes: list[str] = []
    if not load.use_wrk:
        notes.append("REST load from aiohttp (wrk not installed: apt-get install wrk)")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_start": list(load_start),
        },
        "bundle": {
            "path": str(s.bundle),
            "kind": s.meta.get("kind"),
            "trees": _trees(s.model),
            "data": s.data,
        },
        "plan": vars(plan),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rest_client": "wrk" if load.use_wrk else "aiohttp",
        "tolerance": TOLERANCE,
        "parity_rows": PARITY_ROWS,
        "method": {
            "rounds": plan.rounds,
            "how": "servers take turns (A, B, C, A, B, C, ...); each is started, checked for "
            "parity, measured and stopped in every round, one server up at a time",
        },
    }
    log("in-process floor")
    results["floor"] = floor(s.bundle, s.payloads.one, s.payloads.batch, plan.floor_reps)

    parity: dict[str, Any] = {}
    configs, skipped = churn_configs(args, s, notes)
    if args.skip_mlserver:
        skipped |= {"mlserver": "--skip-mlserver", "mlserver_sklearn": "--skip-mlserver"}
    else:
        pipelines = mlserver_pipelines(args, s)
        workers = [int(w) for w in str(args.mlserver_workers).split(",")]
        if len(workers) > 1:
            results["mlserver_sweep"] = sweep(pipelines, workers, plan, load, s, parity)
            best = results["mlserver_sweep"]["best"]
        else:
            best = {key: workers[0] for key in pipelines}
        for key, pipe in pipelines.items():
            configs.append(mlserver_config(key, pipe, best[key], s.work, FULL_RUNS))
        if args.skip_sklearn:
            skipped["mlserver_sklearn"] = "--skip-sklearn"
    results["order"] = [c.key for c in configs]
    results["skipped"] = skipped
    results["servers"] = run_rounds(
        configs, plan.rounds, load, s.check_rows, plan.seconds, parity, "round"
    )
    for key, p in parity.items():
        ref = results["servers"].get(key, {}).get("parity_reference", "the bundle's offline model")
        p["reference"] = ref
    results["parity"] = parity
    results["parity_failures"] = 0  # any failure ends the run with ParityError
    results["ratios"] = ratios(results)
    results["targets"] = check_targets(results)
    results["notes"] = notes
    results["machine"]["load_average_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(render(json.loads(args.report.read_text()), args.report))
        return 0
    plan = make_plan(args)
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        results, out = run(args, plan)
    except ParityError as err:
        print(f"bench: PARITY FAILURE: {err}", file=sys.stderr)
        return 1
    print(render(results, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
