"""The data stages as plain functions over files and directories, and `churn data ...`."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_components.data import cli
from churn_components.data import steps as stages
from churn_components.data.fit_features import fit_features, load_features
from churn_components.data.ingest import describe_csv, ingest, redact_uri
from churn_components.data.preprocess import split_frame
from churn_core.errors import BundleIntegrityError, BundleUnusable, DataContractError, NotFound
from churn_core.settings import Settings
from churn_model.features import ChurnFeatures
from churn_model.serialize import read_archive, write_archive

ROOT = Path(__file__).resolve().parents[2]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_chain(source: Path | str, root: Path, max_share: float = 0.01) -> dict[str, dict]:
    d = {k: root / k for k in ("ingest", "validate", "preprocess", "features")}
    return {
        "ingest": stages.run_ingest(str(source), d["ingest"]),
        "validate": stages.run_validate(d["ingest"], d["validate"], max_share),
        "preprocess": stages.run_preprocess(d["validate"], d["preprocess"], 0.2, 42),
        "features": stages.run_features(d["preprocess"], d["features"], (12, 24, 48, 60)),
    }


@pytest.fixture
def real_like_csv(tmp_path: Path, synthetic_raw_frame: pd.DataFrame) -> Path:
    """The synthetic rows under ids of the real form (so nothing marks them synthetic)."""
    frame = synthetic_raw_frame.copy()
    frame["customerID"] = [f"{i:04d}-ABCDE" for i in range(len(frame))]
    path = tmp_path / "real-like.csv"
    frame.to_csv(path, index=False)
    return path


# -- the chain over directories ---------------------------------------------------------


def test_four_stages_chain_and_record_what_they_wrote(tmp_path, synthetic_csv):
    metas = run_chain(synthetic_csv, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "ingest" / stages.RAW).read_bytes() == synthetic_csv.read_bytes()
    ing = metas["ingest"]
    assert ing["sha256"] == sha(synthetic_csv) and ing["rows"] == 600
    assert ing["source_uri"] == str(synthetic_csv) and ing["bytes"] == synthetic_csv.stat().st_size

    val = metas["validate"]
    assert (val["input_rows"], val["accepted_rows"], val["rejected_rows"]) == (600, 600, 0)
    assert val["sha256"] == sha(out / "validate" / stages.VALIDATED)
    assert val["input_sha256"] == ing["sha256"]
    report = json.loads((out / "validate" / stages.REPORT).read_text())
    assert report["passed"] is True and report["synthetic"] is True

    pre = metas["preprocess"]
    train = stages.read_dataset(out / "preprocess" / stages.TRAIN)
    test = stages.read_dataset(out / "preprocess" / stages.TEST)
    assert (len(train), len(test)) == (pre["train_rows"], pre["test_rows"]) == (480, 120)
    assert set(train["customerID"]).isdisjoint(test["customerID"])
    assert pre["train_sha256"] == sha(out / "preprocess" / stages.TRAIN)

    feat = metas["features"]
    transform = load_features((out / "features" / stages.TRANSFORM).read_bytes(), feat["sha256"])
    description = json.loads((out / "features" / stages.DESCRIPTION).read_text())
    n_out = len(
        ChurnFeatures().fit(stages.read_dataset(out / "preprocess" / stages.TRAIN)).output_features
    )
    assert description["n_features"] == feat["n_features"] == n_out
    assert description["fitted_rows"] == 480
    assert [f["name"] for f in description["features"]] == list(transform.get_feature_names_out())
    assert description["train_sha256"] == pre["train_sha256"]
    # the saved transform is the one fitted on train: same numbers as a fresh fit
    fresh = ChurnFeatures((12, 24, 48, 60)).fit(train)
    assert np.array_equal(transform.transform(test), fresh.transform(test))

    for name, meta in metas.items():
        on_disk = json.loads((out / name / stages.METADATA).read_text())
        assert on_disk == json.loads(json.dumps(meta, default=str))
        assert on_disk["synthetic"] is True, name


def test_real_looking_data_is_not_marked_synthetic(tmp_path, real_like_csv):
    metas = run_chain(real_like_csv, tmp_path / "out")
    assert [m["synthetic"] for m in metas.values()] == [False] * 4


def test_synthetic_flag_from_upstream_metadata_is_kept(tmp_path, real_like_csv):
    out = tmp_path / "out"
    stages.run_ingest(str(real_like_csv), out / "ingest")
    meta = json.loads((out / "ingest" / stages.METADATA).read_text())
    (out / "ingest" / stages.METADATA).write_text(json.dumps({**meta, "synthetic": True}))
    assert stages.run_validate(out / "ingest", out / "validate", 0.01)["synthetic"] is True


def test_stages_are_reproducible(tmp_path, synthetic_csv):
    first = run_chain(synthetic_csv, tmp_path / "a")
    second = run_chain(synthetic_csv, tmp_path / "b")
    for name in first:
        assert first[name] == second[name], name


def test_validate_over_the_limit_fails_but_leaves_its_report(tmp_path, synthetic_raw_frame):
    bad = synthetic_raw_frame.copy()
    bad.loc[:29, "tenure"] = -1  # 30 of 600 = 5%
    src = tmp_path / "bad.csv"
    bad.to_csv(src, index=False)
    stages.run_ingest(str(src), tmp_path / "ingest")
    with pytest.raises(DataContractError, match=r"30 of 600 rows rejected \(share 0.0500 > limit"):
        stages.run_validate(tmp_path / "ingest", tmp_path / "validate", 0.01)
    report = json.loads((tmp_path / "validate" / stages.REPORT).read_text())
    assert report["passed"] is False and report["reasons"]["out_of_range"] == 30
    rejected = pd.read_csv(tmp_path / "validate" / stages.REJECTED)
    assert rejected["row"].tolist() == list(range(1, 31))
    assert set(rejected["reason"]) == {"out_of_range"}
    assert not (tmp_path / "validate" / stages.VALIDATED).exists()
    # under a looser limit the same data passes, minus the rejected rows
    meta = stages.run_validate(tmp_path / "ingest", tmp_path / "validate", 0.05)
    assert meta["accepted_rows"] == 570


# -- the pieces -------------------------------------------------------------------------


def test_ingest_unreadable_uri_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "telco.csv"
    with pytest.raises(NotFound, match=str(missing)) as err:
        ingest(str(missing))
    assert "churn data synthesize" in str(err.value)
    with pytest.raises(NotFound, match="telco.csv"):
        stages.run_ingest(f"file://{missing}", tmp_path / "out")
    assert not (tmp_path / "out" / stages.RAW).exists()


def test_ingest_refuses_empty_and_binary_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataContractError, match="empty.csv: empty file"):
        ingest(str(empty))
    with pytest.raises(DataContractError, match="x.bin: not a CSV file: not UTF-8 text"):
        describe_csv(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "x.bin")


def test_describe_counts_records_not_lines():
    data = b'customerID,note\nA-1,"two\nlines"\n\nA-2,x\n'
    meta = describe_csv(data, "q.csv")
    assert meta["rows"] == 2
    assert meta["columns"] == ["customerID", "note"]
    assert meta["synthetic"] is False


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "https://acct.blob.core.windows.net/c/t.csv?sv=1&sig=SECRET",
            "https://acct.blob.core.windows.net/c/t.csv?<redacted>",
        ),
        ("https://user:pw@example.org/t.csv", "https://example.org/t.csv"),
        ("data/raw/t.csv", "data/raw/t.csv"),
        ("az://data/t.csv", "az://data/t.csv"),
    ],
)
def test_recorded_uri_never_holds_credentials(uri, shown):
    assert redact_uri(uri) == shown


def test_split_is_stratified_and_seeded(synthetic_frame):
    a = split_frame(synthetic_frame, 0.25, 7)
    b = split_frame(synthetic_frame, 0.25, 7)
    c = split_frame(synthetic_frame, 0.25, 8)
    assert a.train.equals(b.train) and a.test.equals(b.test)
    assert not a.test.equals(c.test)
    share = a.metadata["churn_share"]
    assert abs(a.metadata["train_churn_share"] - share) < 0.01
    assert abs(a.metadata["test_churn_share"] - share) < 0.02
    assert a.metadata["test_rows"] == 150 and a.metadata["train_rows"] == 450


def test_split_refuses_a_single_class(synthetic_frame):
    with pytest.raises(DataContractError, match="cannot make a stratified split"):
        split_frame(synthetic_frame.assign(Churn="No"), 0.2, 1)


def test_features_artifact_is_checked_before_it_is_read(synthetic_frame):
    fitted = fit_features(synthetic_frame, (12, 24))
    assert fitted.description["sha256"] == hashlib.sha256(fitted.stored).hexdigest()
    default = fit_features(synthetic_frame, (12, 24, 48, 60))
    assert (
        fitted.description["n_features"] == default.description["n_features"] - 2
    )  # 2 bands fewer
    assert fitted.description["params"] == {"tenure_bands": [12, 24], "scale": True}
    with pytest.raises(BundleIntegrityError, match="refusing to load"):
        load_features(fitted.stored + b"x", fitted.description["sha256"])
    with pytest.raises(BundleIntegrityError, match="not a stored feature transform"):
        load_features(pickle.dumps({"not": "features"}))


def test_features_artifact_is_data_and_rebuilds_the_same_transform(synthetic_frame):
    fitted = fit_features(synthetic_frame, (12, 24, 48, 60))
    # the same fit gives the same bytes (DVC and the recorded sha256 rely on it)
    assert fit_features(synthetic_frame, (12, 24, 48, 60)).stored == fitted.stored
    files = read_archive(fitted.stored)
    assert sorted(files) == ["mean.npy", "scale.npy", "transform.json"]
    assert not any(data.startswith(b"\x80") for data in files.values())  # no pickle inside
    manifest = json.loads(files["transform.json"])
    assert manifest["format"] == fitted.description["format"] == 2
    assert manifest["fields"]["params"] == {"tenure_bands": [12, 24, 48, 60], "scale": True}
    again = load_features(fitted.stored, fitted.description["sha256"])
    assert np.array_equal(
        again.transform(synthetic_frame), fitted.transform.transform(synthetic_frame)
    )
    assert again.output_features == fitted.transform.output_features


def test_features_artifact_of_another_layout_is_refused(synthetic_frame):
    fitted = fit_features(synthetic_frame, (12, 24))
    files = read_archive(fitted.stored)
    manifest = json.loads(files["transform.json"])
    manifest["fields"]["output_features"][3]["name"] = "Partner=Maybe"
    edited = write_archive({**files, "transform.json": json.dumps(manifest).encode()})
    with pytest.raises(
        BundleUnusable, match="first difference at column 3: stored 'Partner=Maybe'"
    ):
        load_features(edited)
    manifest["format"] = 1
    older = write_archive({**files, "transform.json": json.dumps(manifest).encode()})
    with pytest.raises(
        BundleUnusable, match="format 1 cannot be read by this code, which reads format 2"
    ):
        load_features(older)


def test_publish_copies_a_snapshot_to_the_store(tmp_path, synthetic_csv):
    from churn_core.store import open_store

    metas = run_chain(synthetic_csv, tmp_path / "out")
    folder = tmp_path / "out" / "features"
    files = {n: folder / n for n in (stages.TRANSFORM, stages.DESCRIPTION)}
    where = stages.publish(str(tmp_path / "store"), "features", files, metas["features"])
    again = stages.publish(str(tmp_path / "store"), "features", files, metas["features"])
    assert where == again  # content-addressed: same outputs, same place
    store = open_store(where)
    assert store.get_bytes(stages.TRANSFORM) == files[stages.TRANSFORM].read_bytes()
    meta = json.loads(store.get_bytes(stages.METADATA))
    assert meta["files"][stages.TRANSFORM]["sha256"] == sha(files[stages.TRANSFORM])
    assert meta["synthetic"] is True
    assert store.recorded_sha256(stages.TRANSFORM) == sha(files[stages.TRANSFORM])


# -- the CLI ----------------------------------------------------------------------------


def churn_data(argv: list[str], capsys, **env: str) -> dict:
    parser = argparse.ArgumentParser(prog="churn data")
    cli.add_arguments(parser)
    settings = Settings(**env)  # type: ignore[arg-type]
    assert cli.run(parser.parse_args(argv), settings) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_synthesize_then_all(tmp_path, capsys, monkeypatch):
    config = str(ROOT / "model_config.yaml")
    out = churn_data(
        ["synthesize", "--out", str(tmp_path / "s.csv"), "--rows", "300", "--seed", "4"],
        capsys,
        config_path=config,
    )
    assert out == {"path": str(tmp_path / "s.csv"), "rows": 300, "seed": 4, "synthetic": True}
    result = churn_data(
        ["all", "--root", str(tmp_path / "data"), "--store", str(tmp_path / "store")],
        capsys,
        config_path=config,
        data_uri=str(tmp_path / "s.csv"),
    )
    assert result["synthetic"] is True
    assert set(result["seconds"]) == {"ingest", "validate", "preprocess", "features", "total"}
    assert result["stages"]["preprocess"]["train_rows"] == 240  # test_size 0.2 from the config
    assert (tmp_path / "data" / "processed" / "features" / stages.TRANSFORM).is_file()
    assert len(list((tmp_path / "store" / "data").iterdir())) == 4


def test_cli_single_stages_use_the_dvc_layout(tmp_path, capsys, monkeypatch, synthetic_csv):
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "model_config.yaml")
    churn_data(["ingest", "--source", str(synthetic_csv)], capsys, config_path=config)
    churn_data(["validate"], capsys, config_path=config)
    churn_data(["preprocess"], capsys, config_path=config)
    meta = churn_data(["features"], capsys, config_path=config)
    assert meta["stage"] == "features" and meta["synthetic"] is True
    assert (tmp_path / cli.FEATURES_DIR / stages.TRANSFORM).is_file()


def test_dvc_yaml_runs_the_cli_stages_in_order():
    import yaml

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(dvc) == ["ingest", "validate", "preprocess", "features"]
    assert dvc["validate"]["cmd"].startswith("churn data validate")
    assert dvc["validate"]["deps"][0] == dvc["ingest"]["outs"][0] == cli.INGEST_DIR
    assert dvc["preprocess"]["deps"][0] == dvc["validate"]["outs"][0] == cli.VALIDATED_DIR
    assert dvc["features"]["deps"][0] == dvc["preprocess"]["outs"][0] == cli.SPLIT_DIR
    assert dvc["features"]["outs"][0] == cli.FEATURES_DIR
    # the run_* wrappers live in stages.py: a change there reruns every stage
    assert all(
        "components/data/steps.py" in dvc[s]["deps"] for s in ("validate", "preprocess", "features")
    )
    params = {p for s in dvc.values() for f in s.get("params", []) for p in f["model_config.yaml"]}
    assert params == {
        "data.max_rejected_share",
        "split.test_size",
        "split.seed",
        "features.tenure_bands",
    }


def test_components_image_is_named_once_and_matches_the_package_version():
    from churn_components.data.component import COMPONENTS_IMAGE

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert COMPONENTS_IMAGE.rsplit(":", 1)[1] == f"{version}-python3.11"
    assert COMPONENTS_IMAGE in (ROOT / "Dockerfile").read_text()
    # the base image is Python 3.11 slim (pinned by digest: tests/unit/test_images.py)
    assert "ARG PYTHON_IMAGE=python:3.11." in (ROOT / "Dockerfile").read_text()


def test_parquet_round_trip_keeps_types_and_nan(synthetic_frame, tmp_path):
    frame = synthetic_frame.copy()
    frame.loc[0, ["tenure", "TotalCharges"]] = [0, np.nan]
    stages.write_dataset(frame, tmp_path / "t.parquet")
    back = stages.read_dataset(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, frame)
    assert io.BytesIO((tmp_path / "t.parquet").read_bytes()).read(4) == b"PAR1"
