"""A real Prometheus scraping `churn serve`: what an operator's dashboard would see.

Predictions (churn and not), then bad requests, go to a fresh server; the
test then asks Prometheus's HTTP API, not `/metrics` directly, until the
scraped series show exactly what was sent: outcomes, the probability
histogram, validation errors by column, the served version, and KServe's
own latency histograms.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.fixtures.model_server import v2_body
from tests.fixtures.prometheus import SCRAPE_JOB

pytestmark = pytest.mark.integration

MODEL = "churn"


def _infer(url, body):
    return requests.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=30)


def _by(result, label):
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def _scalar(result):
    return sum(float(r["value"][1]) for r in result)


@pytest.fixture(scope="module")
def traffic(scraped_model_server, customer_split):
    """Send the traffic once; return what the server answered (the expected counts)."""
    url = scraped_model_server.server.url
    held_out = customer_split[1]
    decisions = []
    # batches of different sizes and single rows
    for start, stop in ((0, 40), (40, 41), (41, 42), (42, 120)):
        r = _infer(url, v2_body(held_out.iloc[start:stop]))
        assert r.status_code == 200, r.text
        outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
        decisions += outputs["churn"]
    # bad requests the model rejects, by the column at fault
    bad_rows = []
    for column, value in (("Contract", "Weekly"), ("Contract", "Forever"), ("tenure", -3)):
        body = v2_body(held_out.iloc[:2])
        tensor = next(t for t in body["inputs"] if t["name"] == column)
        tensor["data"] = [value, tensor["data"][1]]
        bad_rows.append(column)
        r = _infer(url, body)
        assert r.status_code == 400 and column in r.json()["error"], r.text
    # rejected before reaching the model: not counted as predictions or validation errors
    r = requests.post(
        f"{url}/v2/models/{MODEL}/infer",
        data=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert _infer(url, {"inputs": "nope"}).status_code == 400
    return {
        "churn": sum(bool(d) for d in decisions),
        "no_churn": sum(not d for d in decisions),
        "rows": len(decisions),
        "ok_requests": 4,
        "model_rejections": len(bad_rows),
        "bad_columns": {c: bad_rows.count(c) for c in set(bad_rows)},
    }


@pytest.fixture(scope="module")
def prom(scraped_model_server, traffic):
    prom = scraped_model_server.prometheus
    # the scrape that follows the traffic: wait until the last request is in
    prom.wait_for(
        f'sum(churn_validation_errors_total{{model_name="{MODEL}"}})',
        lambda r: _scalar(r) == traffic["model_rejections"],
    )
    return prom


def test_target_is_up(scraped_model_server, prom):
    result = prom.query(f'up{{job="{SCRAPE_JOB}"}}')
    assert len(result) == 1
    assert result[0]["metric"]["instance"] == f"127.0.0.1:{scraped_model_server.server.http_port}"
    assert result[0]["value"][1] == "1"


def test_predictions_by_outcome_match_what_was_sent(prom, traffic):
    assert traffic["churn"] > 0 and traffic["no_churn"] > 0, traffic  # both outcomes exercised
    expected = {"churn": traffic["churn"], "no_churn": traffic["no_churn"]}
    result = prom.wait_for(
        f'churn_predictions_total{{model_name="{MODEL}"}}',
        lambda r: _by(r, "outcome") == expected,
    )
    assert _by(result, "outcome") == expected


def test_probability_histogram_counts_every_row(prom, traffic):
    count = prom.wait_for(
        f'churn_probability_count{{model_name="{MODEL}"}}',
        lambda r: _scalar(r) == traffic["rows"],
    )
    assert _scalar(count) == traffic["rows"]
    buckets = _by(prom.query(f'churn_probability_bucket{{model_name="{MODEL}"}}'), "le")
    assert buckets["+Inf"] == traffic["rows"]
    assert buckets["1.0"] == traffic["rows"]  # probabilities never exceed 1
    assert 0 < buckets["0.5"] < traffic["rows"]  # both sides of 0.5 were served
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts)  # cumulative
    total = _scalar(prom.query(f'churn_probability_sum{{model_name="{MODEL}"}}'))
    assert 0 < total < traffic["rows"]
    quantile = prom.query(
        f'histogram_quantile(0.5, sum by (le) (churn_probability_bucket{{model_name="{MODEL}"}}))'
    )
    assert 0 < _scalar(quantile) <= 1


def test_validation_errors_by_column(prom, traffic):
    result = prom.wait_for(
        f'churn_validation_errors_total{{model_name="{MODEL}"}}',
        lambda r: _by(r, "column") == traffic["bad_columns"],
    )
    assert _by(result, "column") == {"Contract": 2, "tenure": 1}


def test_model_version_info_gauge(scraped_model_server, prom):
    meta = json.loads((scraped_model_server.server.bundle / "metadata.json").read_text())
    result = prom.query(f'churn_model_info{{model_name="{MODEL}"}}')
    assert len(result) == 1
    labels = result[0]["metric"]
    assert labels["version"] == str(meta["version"]) == "7"
    assert labels["kind"] == meta["kind"] == "xgboost"
    assert meta["files"]["model.json"].startswith(labels["bundle_sha256"])
    assert result[0]["value"][1] == "1"


def test_kserve_latency_histograms(prom, traffic):
    # KServe times every call that reaches the model, the rejected ones included
    calls = traffic["ok_requests"] + traffic["model_rejections"]
    for stage in ("preprocess", "predict", "postprocess"):
        expr = f'request_{stage}_seconds_count{{model_name="{MODEL}"}}'
        expected = calls if stage != "postprocess" else traffic["ok_requests"]
        result = prom.wait_for(expr, lambda r, n=expected: _scalar(r) == n)
        assert _scalar(result) == expected, stage
    seconds = _scalar(prom.query(f'request_predict_seconds_sum{{model_name="{MODEL}"}}'))
    assert 0 < seconds < 30
    p99 = prom.query(
        "histogram_quantile(0.99, sum by (le) "
        f'(request_predict_seconds_bucket{{model_name="{MODEL}"}}))'
    )
    assert 0 < _scalar(p99) < 10
