"""The chart's alerts fire when they should and only then; its dashboard queries real metrics.

The PrometheusRule is rendered from the chart (one source: no copy of the rules
is kept) and its `spec` handed to Prometheus's own `promtool`: `check rules`, then
`test rules` with the suite in tests/data/rules/, which feeds input series to
every alert and says which alerts fire when. The Grafana dashboard's queries go
through `promtool check rules` too, and every metric the rules and the dashboard
name must be one the server, KServe, Istio or the drift service exposes.
Without promtool the tests skip locally and fail in CI (`.ci/apt-packages.txt`
installs Debian's prometheus package, which ships it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.ci import missing

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn"
SUITE = ROOT / "tests" / "data" / "rules" / "churn-alerts.test.yaml"
RELEASE, NAMESPACE = "churn", "churn"

# What the drift service exposes (monitoring/), beside the server's metrics and KServe's.
DRIFT_METRICS = {
    "churn_drift_p_value",
    "churn_drift_effect_size",
    "churn_drift_window_drift",
    "churn_drift_window_samples",
    "churn_drift_last_window_timestamp_seconds",
    "churn_estimated_roc_auc_lower",
    "churn_realized_roc_auc",
}
ISTIO_METRICS = {"istio_requests_total"}  # the sidecars' standard request metric


def promtool() -> str:
    """The `promtool` executable: skip when missing, fail when missing in CI."""
    exe = shutil.which("promtool")
    if exe:
        return exe
    missing("promtool is not installed (Debian package `prometheus`, see .ci/apt-packages.txt)")


def rendered(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's objects by kind with the observability objects switched on."""
    on = {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}
    for key, value in (values or {}).items():
        on[key] = {**on.get(key, {}), **value}
    with helm.Chart.load(CHART) as chart:
        out = chart.render(on, name=RELEASE, namespace=NAMESPACE)
        out.pop(f"{chart.name}/templates/NOTES.txt")
    docs = [d for text in out.values() for d in yaml.safe_load_all(text) if d]
    return {d["kind"]: d for d in docs}


def rules_file(directory: Path, values: dict[str, Any] | None = None) -> Path:
    """The rendered PrometheusRule's spec as a Prometheus rules file."""
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rendered(values)["PrometheusRule"]["spec"], sort_keys=False))
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    proc = run("check", "rules", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 7 rules found" in proc.stdout


def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    rules_file(tmp_path)
    shutil.copy(SUITE, tmp_path / SUITE.name)
    proc = run("test", "rules", SUITE.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_suite_covers_every_alert_firing_and_silent() -> None:
    groups = rendered()["PrometheusRule"]["spec"]["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    suite = yaml.safe_load(SUITE.read_text())
    assert suite["rule_files"] == ["rules.yaml"]
    cases = [case for test in suite["tests"] for case in test["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert alerts == firing == silent, (alerts, firing, silent)


@pytest.mark.parametrize(
    ("values", "failing"),
    [
        ({"prometheusRule": {"errorRate": {"threshold": 0.2}}}, "ChurnModelErrorRateHigh"),
        ({"prometheusRule": {"latency": {"p99Seconds": 1}}}, "ChurnModelLatencyHigh"),
        ({"prometheusRule": {"drift": {"windows": 1}}}, "ChurnDriftSustained"),
        ({"prometheusRule": {"minRequestsPerSecond": 0}}, "ChurnModelErrorRateHigh"),
    ],
    ids=["error-threshold", "latency-threshold", "one-window", "no-traffic-floor"],
)
def test_the_suite_fails_when_a_threshold_moves(
    tmp_path: Path, values: dict[str, Any], failing: str
) -> None:
    rules_file(tmp_path, values)
    shutil.copy(SUITE, tmp_path / SUITE.name)
    proc = run("test", "rules", SUITE.name, cwd=tmp_path)
    assert proc.returncode != 0
    assert f"alertname: {failing}" in proc.stdout + proc.stderr


def _dashboard() -> dict[str, Any]:
    configmap = rendered()["ConfigMap"]
    (text,) = configmap["data"].values()
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every panel query with Grafana's variables filled in, by panel title and ref."""
    fill = {
        "$__rate_interval": "5m",
        "$__range": "1h",
        "$namespace": NAMESPACE,
        "$isvc": RELEASE,
        "$model": "churn",
    }
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in fill.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
            queries[f"{panel['title']} {target['refId']}"] = expr
    return queries


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    dashboard = _dashboard()
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert titles >= {
        "Request rate",
        "Error rate (5xx share)",
        "Predict latency p50 / p99",
        "Predictions by outcome",
        "Churn probability histogram",
        "Drift flag",
        "Drift p-values",
    }
    queries = _queries(dashboard)
    assert "histogram_quantile(0.5," in queries["Predict latency p50 / p99 A"]
    assert "histogram_quantile(0.99," in queries["Predict latency p50 / p99 B"]
    assert "churn_probability_bucket" in queries["Churn probability histogram A"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = _queries(_dashboard())
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries.values())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = run("check", "rules", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _exposed() -> set[str]:
    """Every series name the serving side exposes: the server's metrics, KServe's, Istio's."""
    import kserve.metrics

    from churn_inference.metrics import churn_metrics

    names = set(ISTIO_METRICS | DRIFT_METRICS)
    collectors = [getattr(churn_metrics(), f) for f in ("predictions", "probability")]
    collectors += [getattr(churn_metrics(), f) for f in ("validation_errors", "model_info")]
    collectors += [kserve.metrics.PREDICT_HIST_TIME, kserve.metrics.EXPLAIN_HIST_TIME]
    for collector in collectors:
        for metric in collector.describe():
            suffixes = {
                "counter": ["_total"],
                "histogram": ["_bucket", "_count", "_sum"],
            }.get(metric.type, [""])
            names |= {metric.name + s for s in suffixes}
    return names


def _metric_names(expr: str) -> set[str]:
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\))", expr))
    promql = {"rate", "increase", "sum", "max", "by", "without", "histogram_quantile", "absent"}
    labels = {"le", "revision", "destination_workload", "outcome", "column", "model"}
    return words - promql - labels - {"model_version", "feature", "test"}


def test_rules_and_dashboard_name_only_exposed_metrics() -> None:
    exposed = _exposed()
    groups = rendered()["PrometheusRule"]["spec"]["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    exprs += list(_queries(_dashboard()).values())
    named = set().union(*(_metric_names(e) for e in exprs))
    assert named >= {"request_predict_seconds_bucket", "churn_predictions_total"}
    assert named - exposed == set()
