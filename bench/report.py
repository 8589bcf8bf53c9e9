"""Summaries (median, min, max over rounds), the results table and the targets.

    .venv/bin/python bench/run.py --report bench/results/bench-<time>.json

Every figure of a server is `<load run>.<metric>`, e.g. `rest_c32.throughput_rps`
or `grpc_c1.p50_ms`; each round gives one value, the table shows the median
and the spread [min-max] over rounds.
"""

from __future__ import annotations

import statistics
from typing import Any

COLUMNS = ("churn", "mlserver", "mlserver_sklearn")
TARGETS = {
    "rest_p50_ms": 3.0,
    "rest_p99_ms": 10.0,
    "grpc_p50_ms": 2.0,
    "batch_1000_p50_ms": 20.0,
    "explain_p50_ms": 10.0,
    "p50_vs_mlserver_max": 0.25,
    "c32_vs_mlserver_min": 4.0,
}

# (label, unit, figure, configs for the three columns: None = the column's own server)
Row = tuple[str, str, str, tuple[str | None, ...] | None]
_CHURN_ONLY: tuple[str | None, ...] = ("churn", "", "")
_LOGGING: tuple[str | None, ...] = ("churn_logging", "", "")
_ROUTE: tuple[str | None, ...] = ("churn_kserve_route", "", "")
ROWS: list[Row] = [
    ("REST 1 row p50 (c=1)", "ms", "rest_c1.p50_ms", None),
    ("REST 1 row p99 (c=1)", "ms", "rest_c1.p99_ms", None),
    ("gRPC 1 row p50 (c=1)", "ms", "grpc_c1.p50_ms", None),
    ("gRPC 1 row p99 (c=1)", "ms", "grpc_c1.p99_ms", None),
    ("REST throughput c=8", "req/s", "rest_c8.throughput_rps", None),
    ("REST throughput c=32", "req/s", "rest_c32.throughput_rps", None),
    ("REST p50 at c=32", "ms", "rest_c32.p50_ms", None),
    ("gRPC throughput c=8", "req/s", "grpc_c8.throughput_rps", None),
    ("gRPC throughput c=32", "req/s", "grpc_c32.throughput_rps", None),
    ("REST 1,000-row batch p50", "ms", "rest_batch_1000.p50_ms", None),
    ("gRPC 1,000-row batch p50", "ms", "grpc_batch_1000.p50_ms", None),
    ("server CPU per request, REST c=1", "ms", "rest_c1.server_cpu_ms_per_request", None),
    ("server CPU per request, REST c=32", "ms", "rest_c32.server_cpu_ms_per_request", None),
    ("server CPU per request, gRPC c=32", "ms", "grpc_c32.server_cpu_ms_per_request", None),
    (
        "server CPU per 1,000-row REST request",
        "ms",
        "rest_batch_1000.server_cpu_ms_per_request",
        None,
    ),
    ("explanation, v1 :explain p50 (c=1)", "ms", "explain_v1_c1.p50_ms", _CHURN_ONLY),
    ("explanation, v2 churn-explainer p50 (c=1)", "ms", "explain_v2_c1.p50_ms", _CHURN_ONLY),
    ("payload logging on: REST 1 row p50 (c=1)", "ms", "rest_c1.p50_ms", _LOGGING),
    ("payload logging on: REST throughput c=32", "req/s", "rest_c32.throughput_rps", _LOGGING),
    ("payload logging on: gRPC throughput c=32", "req/s", "grpc_c32.throughput_rps", _LOGGING),
    ("payload logging on: REST 1,000-row batch p50", "ms", "rest_batch_1000.p50_ms", _LOGGING),
    (
        "payload logging on: server CPU/request, REST c=32",
        "ms",
        "rest_c32.server_cpu_ms_per_request",
        _LOGGING,
    ),
    (
        "payload logging on: receiver CPU/request, REST c=32",
        "ms",
        "rest_c32.receiver_cpu_ms_per_request",
        _LOGGING,
    ),
    (
        "payload logging on: events per request, REST c=32",
        "",
        "rest_c32.events_per_request",
        _LOGGING,
    ),
    ("KServe's stock REST route: REST 1 row p50 (c=1)", "ms", "rest_c1.p50_ms", _ROUTE),
    ("KServe's stock REST route: REST throughput c=32", "req/s", "rest_c32.throughput_rps", _ROUTE),
]
FLOOR_ROWS = [
    ("in process: predict_proba_columns, 1 row p50", "predict_proba_columns_1_row"),
    ("in process: predict_proba_columns, 1,000 rows p50", "predict_proba_columns_1000_rows"),
    ("in process: explanation, 1 row p50", "explain_1_row"),
]


# -- summaries --------------------------------------------------------------------------


def flatten(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """{run: {metric: value}} -> {"run.metric": value} for the numeric metrics."""
    return {
        f"{run}.{metric}": float(value)
        for run, result in runs.items()
        for metric, value in result.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median, min, max and every value of each figure over the rounds."""
    values: dict[str, list[float]] = {}
    for runs in rounds:
        for key, value in flatten(runs).items():
            values.setdefault(key, []).append(value)
    return {
        key: {
            "median": statistics.median(vs),
            "min": min(vs),
            "max": max(vs),
            "values": vs,
        }
        for key, vs in values.items()
    }


def median(results: dict[str, Any], config: str, figure: str) -> float | None:
    server = results.get("servers", {}).get(config)
    if not server:
        return None
    stat = server["summary"].get(figure)
    return None if stat is None else float(stat["median"])


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """churn serve / each MLServer column, on the medians."""
    out: dict[str, float] = {}
    pairs = (
        ("REST p50 (c=1)", "rest_c1.p50_ms"),
        ("gRPC p50 (c=1)", "grpc_c1.p50_ms"),
        ("REST c=32 throughput", "rest_c32.throughput_rps"),
        ("gRPC c=32 throughput", "grpc_c32.throughput_rps"),
        ("server CPU per request REST c=32", "rest_c32.server_cpu_ms_per_request"),
    )
    for other, name in (("mlserver", "MLServer best"), ("mlserver_sklearn", "MLServer sklearn")):
        for label, figure in pairs:
            a, b = median(results, "churn", figure), median(results, other, figure)
            if a is not None and b:
                out[f"{label}: churn serve / {name}"] = a / b
    return out


def check_targets(results: dict[str, Any]) -> dict[str, bool]:
    def m(figure: str) -> float:
        value = median(results, "churn", figure)
        return float("nan") if value is None else value

    checks = {
        "REST p50 <= 3 ms": m("rest_c1.p50_ms") <= TARGETS["rest_p50_ms"],
        "REST p99 <= 10 ms": m("rest_c1.p99_ms") <= TARGETS["rest_p99_ms"],
        "gRPC p50 <= 2 ms": m("grpc_c1.p50_ms") <= TARGETS["grpc_p50_ms"],
        "1,000 rows <= 20 ms": m("rest_batch_1000.p50_ms") <= TARGETS["batch_1000_p50_ms"],
        "XGBoost explanation p50 <= 10 ms": m("explain_v1_c1.p50_ms") <= TARGETS["explain_p50_ms"],
    }
    r = results.get("ratios", {})
    if "REST p50 (c=1): churn serve / MLServer best" in r:
        checks["REST p50 <= 1/4 of MLServer's best"] = (
            r["REST p50 (c=1): churn serve / MLServer best"] <= TARGETS["p50_vs_mlserver_max"]
        )
        checks["c=32 throughput >= 4x MLServer's best"] = (
            r["REST c=32 throughput: churn serve / MLServer best"] >= TARGETS["c32_vs_mlserver_min"]
        )
    return checks


# -- the table --------------------------------------------------------------------------


def fmt(value: float) -> str:
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 0.1 or a == 0:
        return f"{value:.2f}"
    return f"{value:.3f}"


def cell(results: dict[str, Any], config: str, figure: str) -> str:
    server = results.get("servers", {}).get(config)
    if not config:
        return ""
    if not server:
        return "skipped" if config in results.get("skipped", {}) else "-"
    stat = server["summary"].get(figure)
    if stat is None:
        return "-"
    if len(stat["values"]) == 1:
        return fmt(stat["median"])
    return f"{fmt(stat['median'])} [{fmt(stat['min'])}-{fmt(stat['max'])}]"


def headers(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Two header lines per column."""
    best = results.get("mlserver_sweep", {}).get("best", {})
    servers = results.get("servers", {})

    def workers(key: str) -> str:
        w = best.get(key, servers.get(key, {}).get("workers"))
        return "" if w is None else f"(workers={w})"

    return [
        ("churn serve", ""),
        ("MLServer best", workers("mlserver")),
        ("MLServer sklearn", f"pipeline {workers('mlserver_sklearn')}".strip()),
    ]


def parity_cell(results: dict[str, Any], config: str) -> str:
    p = results.get("parity", {}).get(config)
    if not p:
        return "-"
    grpc = "-" if p.get("grpc") is None else f"{p['grpc']:.0e}"
    return f"{p['rest']:.0e} / {grpc}"


def table(results: dict[str, Any]) -> str:
    head = headers(results)
    width, col = 54, 20
    lines = [
        f"{'figure':<{width}} " + " ".join(f"{h[0]:>{col}}" for h in head),
        f"{'':<{width}} " + " ".join(f"{h[1]:>{col}}" for h in head),
        "-" * (width + (col + 1) * len(head)),
    ]
    skipped = results.get("skipped", {})
    announced: set[str] = set()
    for label, unit, figure, configs in ROWS:
        sources = configs or COLUMNS
        if configs and configs[0] in skipped:  # a churn-serve variant not measured: one line
            if configs[0] not in announced:
                announced.add(configs[0])
                what = label.split(":")[0]
                lines.append(f"{what + ': skipped (' + skipped[configs[0]] + ')'}")
            continue
        cells = [cell(results, c or "", figure) for c in sources]
        if all(c in ("", "-") for c in cells):
            continue
        shown = f"{label}, {unit}" if unit else label
        lines.append(f"{shown:<{width}} " + " ".join(f"{c:>{col}}" for c in cells).rstrip())
    floor = results.get("floor", {})
    for label, key in FLOOR_ROWS:
        if key in floor:
            lines.append(f"{label + ', ms':<{width}} {fmt(floor[key]['p50_ms']):>{col}}")
    cells = [parity_cell(results, c) for c in COLUMNS]
    label = f"parity max |served - offline|, REST / gRPC (<= {results.get('tolerance', 1e-6):.0e})"
    lines.append(f"{label:<{width}} " + " ".join(f"{c:>{col}}" for c in cells))
    return "\n".join(lines)


def sweep_lines(results: dict[str, Any]) -> list[str]:
    sweep = results.get("mlserver_sweep")
    if not sweep:
        return []
    lines = [
        f"MLServer parallel_workers sweep ({sweep['rounds']} pass(es), median; "
        f"best = {sweep['criterion']}):",
        f"  {'pipeline':<18} {'workers':>7} {'processes':>9} {'REST c=1 p50 ms':>16} "
        f"{'REST c=32 req/s':>16} {'gRPC c=32 req/s':>16} {'CPU ms/req c=32':>16}",
    ]
    for key, label in (("mlserver", "churn pipeline"), ("mlserver_sklearn", "sklearn pipeline")):
        for workers, entry in sweep["pipelines"].get(key, {}).items():
            s = entry["summary"]

            def v(figure: str, s: dict[str, Any] = s) -> str:
                return fmt(s[figure]["median"]) if figure in s else "-"

            mark = " *" if sweep["best"].get(key) == int(workers) else ""
            lines.append(
                f"  {label:<18} {workers:>7} {entry.get('processes', '-'):>9} "
                f"{v('rest_c1.p50_ms'):>16} {v('rest_c32.throughput_rps'):>16} "
                f"{v('grpc_c32.throughput_rps'):>16} "
                f"{v('rest_c32.server_cpu_ms_per_request'):>16}{mark}"
            )
    return lines


def render(results: dict[str, Any], path: Any) -> str:
    b = results["bundle"]
    m = results["machine"]
    trees = f", {b['trees']} trees" if b.get("trees") else ""
    client = results.get("rest_client", "aiohttp")
    out = [
        f"bundle: {b['kind']}{trees}, fitted on {b['data']} data; servers OMP_NUM_THREADS=1; "
        f"{m['cpus']} CPUs; load average {m['load_average_start'][0]:.2f} at start, "
        f"{m['load_average_end'][0]:.2f} at end",
        f"{results['method']['rounds']} round(s): {results['method']['how']}",
        f"load: REST from {client}; gRPC, batches, explanations from Python asyncio "
        "(bench/loadgen.py); cells: median [min-max] over rounds",
        "",
        table(results),
        "",
    ]
    sweep = sweep_lines(results)
    if sweep:
        out += [*sweep, ""]
    for key, value in results.get("ratios", {}).items():
        out.append(f"  {key}: {value:.2f}x")
    if results.get("ratios"):
        out.append("")
    for name, ok in results.get("targets", {}).items():
        out.append(f"  {'PASS' if ok else 'FAIL'}  {name}")
    for note in results.get("notes", []):
        out.append(f"note: {note}")
    out.append(f"\nresults: {path}")
    return "\n".join(out)
