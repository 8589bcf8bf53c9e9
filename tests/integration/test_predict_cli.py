"""`churn predict` and its v2 client against a real `churn serve` (the session server)."""

from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import requests

from churn_core.errors import InvalidInput, NotFound
from churn_inference.client import V2Client, v2_inputs
from churn_model.contract import FEATURE_NAMES, ID_COLUMN, LABEL_COLUMN
from tests.fixtures.model_server import churn_command, instances

pytestmark = pytest.mark.integration

ROW = re.compile(r"^(\S+)\s+(\d\.\d{3})\s+(yes|no)(?:\s+(Yes|No))?$")


@pytest.fixture(scope="module")
def offline(bundle_dir):
    from churn_model.bundle import load_model

    return load_model(bundle_dir("xgboost"))


@pytest.fixture(scope="module")
def customers_csv(tmp_path_factory, customer_split):
    """Held-out customers as a Telco CSV, one of them in its first month (blank TotalCharges)."""
    frame = customer_split[1].iloc[:12].copy().reset_index(drop=True)
    frame.loc[3, "tenure"] = 0
    frame.loc[3, "TotalCharges"] = np.nan
    path = tmp_path_factory.mktemp("predict") / "customers.csv"
    frame.to_csv(path, index=False)
    return path, frame


def churn_predict(*args, env=None, timeout=60):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*churn_command(), "predict", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def table_rows(stdout):
    return [m.groups() for line in stdout.splitlines() if (m := ROW.match(line))]


# -- the client ------------------------------------------------------------------------------


def test_inputs_match_the_served_metadata(model_server, customers_csv):
    _, frame = customers_csv
    raw = pd.read_csv(customers_csv[0], dtype=str, keep_default_na=False)
    sent = v2_inputs(raw)
    meta = requests.get(f"{model_server.url}/v2/models/churn", timeout=5).json()
    served = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert [t["name"] for t in sent] == list(FEATURE_NAMES)  # no id, no label
    assert {t["name"]: t["datatype"] for t in sent} == served
    by_name = {t["name"]: t for t in sent}
    assert by_name["TotalCharges"]["data"][3] is None  # blank -> null
    assert by_name["tenure"]["data"][3] == 0 and isinstance(by_name["tenure"]["data"][0], int)
    assert all(t["shape"] == [len(frame)] for t in sent)


def test_client_scores_equal_the_offline_model(model_server, customers_csv, offline):
    _, frame = customers_csv
    raw = pd.read_csv(customers_csv[0], dtype=str, keep_default_na=False)
    scored = V2Client(model_server.url).score(raw)
    model, meta = offline
    expected = model.predict_proba(frame)
    np.testing.assert_allclose(scored.probability, expected, atol=1e-6)
    assert scored.churn == list(expected >= meta["threshold"])
    assert scored.model_version == "7"
    # the ids went with the request and came back with the answer
    assert scored.ids == raw[ID_COLUMN].tolist()
    assert len(scored.request_ids) == 1 and len(scored.request_ids[0]) == 36
    anonymous = V2Client(model_server.url).score(raw.drop(columns=[ID_COLUMN]))
    assert anonymous.ids == [] and anonymous.probability == scored.probability


def test_client_raises_the_servers_message(model_server, customers_csv):
    raw = pd.read_csv(customers_csv[0], dtype=str, keep_default_na=False)
    bad = raw.copy()
    bad.loc[1, "Contract"] = "Weekly"
    with pytest.raises(InvalidInput, match=r"400: column 'Contract': unknown category 'Weekly'"):
        V2Client(model_server.url).score(bad)
    with pytest.raises(NotFound, match="nope"):
        V2Client(model_server.url, model="nope").score(raw)


# -- the command -------------------------------------------------------------------------------


def test_predict_input_prints_the_table(model_server, customers_csv, offline):
    path, frame = customers_csv
    done = churn_predict("--input", str(path), "--url", model_server.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"churn v7 at {model_server.url}: 12 customers")
    rows = table_rows(done.stdout)
    model, meta = offline
    expected = model.predict_proba(frame)
    assert [r[0] for r in rows] == frame[ID_COLUMN].tolist()
    np.testing.assert_allclose([float(r[1]) for r in rows], expected, atol=5e-4)
    assert [r[2] == "yes" for r in rows] == list(expected >= meta["threshold"])
    assert [r[3] for r in rows] == frame[LABEL_COLUMN].tolist()  # shown, never sent


def test_predict_explain_shows_the_explainers_reasons_and_what_ifs(model_server, customers_csv):
    path, frame = customers_csv
    done = churn_predict("--input", str(path), "--url", model_server.url, "--explain")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # what the server's v1 explain says about the same customers
    v1 = requests.post(
        f"{model_server.url}/v1/models/churn:explain",
        json={"instances": instances(frame)},
        timeout=30,
    ).json()["explanations"]
    for i, customer in enumerate(frame[ID_COLUMN]):
        at = next(n for n, line in enumerate(lines) if line.startswith(f"{customer} "))
        expected = []
        for j, reason in enumerate(v1[i]["reasons"]):
            expected.append(f"    {j + 1}. {reason['text']}")
            if reason["suggestion"]:
                expected.append(f"       -> {reason['suggestion']}")
            if reason["what_if"]:
                expected.append(f"          what if {reason['what_if']['text']}")
        # the reasons, then the next customer (none is a valid answer: nothing shown)
        assert lines[at + 1 : at + 1 + len(expected)] == expected, customer
        after = lines[at + 1 + len(expected) :]
        assert not after or not after[0].startswith("    "), customer
    assert any(line.startswith("       -> Offer a discounted one-year contract.") for line in lines)
    what_if = [line for line in lines if line.startswith("          what if Contract = One year: ")]
    assert what_if and all(re.search(r": \d+\.\d% -> \d+\.\d%$", line) for line in what_if)
    assert " 0.0 points" not in done.stdout


def test_predict_shows_server_errors_and_fails(model_server, customers_csv, tmp_path):
    path, _ = customers_csv
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace("Month-to-month", "Weekly", 1))
    done = churn_predict("--input", str(bad), "--url", model_server.url)
    assert done.returncode == 2 and done.stdout == ""
    assert "400: column 'Contract': unknown category 'Weekly'" in done.stderr

    done = churn_predict("--input", str(path), "--url", model_server.url, "--model", "nope")
    assert done.returncode == 2 and "answered 404" in done.stderr and "nope" in done.stderr

    from tests.fixtures.ports import free_port

    done = churn_predict("--input", str(path), "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2 and "no server answers" in done.stderr


def test_predict_sample_of_configured_data(model_server, customers_csv):
    path, frame = customers_csv
    done = churn_predict(
        "--sample", "5", "--url", model_server.url, env={"CHURN_DATA_URI": str(path)}
    )
    assert done.returncode == 0, done.stderr
    ids = [r[0] for r in table_rows(done.stdout)]
    assert len(ids) == 5 and set(ids) <= set(frame[ID_COLUMN])
    synthetic = bool(frame[ID_COLUMN].str.startswith("SYNTH-").any())  # no CHURN_DATA_URI
    assert ("[SYNTHETIC CUSTOMERS]" in done.stdout.splitlines()[0]) == synthetic
    assert "does not exist" not in done.stderr  # the configured file was read


def test_predict_sample_without_data_is_synthetic_and_says_so(model_server, tmp_path):
    env = {"CHURN_DATA_URI": str(tmp_path / "absent.csv"), "CHURN_HTTP_PORT": "1"}
    done = churn_predict("--sample", "3", "--url", model_server.url, env=env)
    assert done.returncode == 0, done.stderr
    ids = [r[0] for r in table_rows(done.stdout)]
    assert len(ids) == 3 and all(i.startswith("SYNTH-") for i in ids)
    assert "*** SYNTHETIC DATA ***" in done.stderr and "absent.csv does not exist" in done.stderr
    assert "[SYNTHETIC CUSTOMERS]" in done.stdout.splitlines()[0]


def test_predict_default_url_from_settings(model_server, customers_csv):
    path, _ = customers_csv
    env = {"CHURN_HTTP_PORT": str(model_server.http_port), "CHURN_MODEL_NAME": "churn"}
    done = churn_predict("--input", str(path), env=env)
    assert done.returncode == 0, done.stderr
    assert len(table_rows(done.stdout)) == 12
