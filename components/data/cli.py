"""`churn data ...`: the data stages from the command line (what `dvc.yaml` runs).

    churn data synthesize --out data/synthetic/telco.csv [--rows N] [--seed S]
    churn data ingest     [--source URI] [--out data/interim/ingest]
    churn data validate   [--input data/interim/ingest] [--out data/interim/validated]
    churn data preprocess [--input data/interim/validated] [--out data/processed/split]
    churn data features   [--input data/processed/split] [--out data/processed/features]
    churn data all        [--source URI] [--root data]        (the four in a row, timed)

The source defaults to `CHURN_DATA_URI` (Settings.data_uri); parameters come
from `model_config.yaml` (`CHURN_CONFIG_PATH`, or `--config`). Each stage
writes its files and a `metadata.json` into its `--out` directory and prints
that metadata as JSON. `--store URI` also copies the outputs to the artifact
store (a folder or Azure Blob) under `data/<stage>/<sha256[:16]>/`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn_core.settings import Settings

if TYPE_CHECKING:
    from churn_core.config import ChurnConfig

HELP = "data stages: synthesize, ingest, validate, preprocess, features, all"

INGEST_DIR = "data/interim/ingest"
VALIDATED_DIR = "data/interim/validated"
SPLIT_DIR = "data/processed/split"
FEATURES_DIR = "data/processed/features"
STAGE_DIRS = {
    "ingest": INGEST_DIR,
    "validate": VALIDATED_DIR,
    "preprocess": SPLIT_DIR,
    "features": FEATURES_DIR,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `data` subcommands."""
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="STAGE")

    def stage(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=None, help="model_config.yaml (CHURN_CONFIG_PATH)")
        p.add_argument(
            "--store",
            default="",
            help="also copy the outputs to this artifact store (path, file://, az://, https blob)",
        )
        return p

    p = sub.add_parser(
        "synthesize",
        help="generate a SYNTHETIC stand-in data set (same schema, never the real data)",
    )
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--rows", type=int, default=None, help="rows (default data.synthetic_rows)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", default=None, help="model_config.yaml (CHURN_CONFIG_PATH)")

    p = stage("ingest", "read the source table (path, https, Azure Blob); record sha256 and rows")
    p.add_argument("--source", default=None, help="source URI (default CHURN_DATA_URI)")
    p.add_argument("--out", default=INGEST_DIR, help=f"output directory (default {INGEST_DIR})")

    p = stage("validate", "check every row against the data contract; write the report")
    p.add_argument("--input", default=INGEST_DIR, help=f"ingest output (default {INGEST_DIR})")
    p.add_argument("--out", default=VALIDATED_DIR, help=f"output directory ({VALIDATED_DIR})")

    p = stage("preprocess", "stratified train/test split with the configured seed")
    p.add_argument("--input", default=VALIDATED_DIR, help=f"validate output ({VALIDATED_DIR})")
    p.add_argument("--out", default=SPLIT_DIR, help=f"output directory ({SPLIT_DIR})")

    p = stage("features", "fit the feature transform on the train split; save it")
    p.add_argument("--input", default=SPLIT_DIR, help=f"preprocess output ({SPLIT_DIR})")
    p.add_argument("--out", default=FEATURES_DIR, help=f"output directory ({FEATURES_DIR})")

    p = stage("all", "ingest, validate, preprocess and features in a row, timed")
    p.add_argument("--source", default=None, help="source URI (default CHURN_DATA_URI)")
    p.add_argument("--root", default="data", help="root of interim/ and processed/ (data)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one data subcommand; print its metadata as JSON."""
    from churn_core.config import load_config

    config = load_config(args.config or settings.config_path)
    connection = settings.azure_storage_connection_string
    command = args.data_command

    if command == "synthesize":
        from churn_model.synthetic import write_synthetic_csv

        rows = args.rows or config.data.synthetic_rows
        path = write_synthetic_csv(args.out, rows=rows, seed=args.seed)
        _emit({"synthetic": True, "path": str(path), "rows": rows, "seed": args.seed})
        return 0

    if command == "all":
        root = Path(args.root)
        upstream: str | Path = _source(args, settings)
        timings: dict[str, float] = {}
        metas: dict[str, Any] = {}
        for name, layout in STAGE_DIRS.items():
            out = root / Path(layout).relative_to("data")
            started = time.perf_counter()
            metas[name] = _run_stage(name, upstream, out, config, connection)
            timings[name] = round(time.perf_counter() - started, 3)
            _publish(args, name, out, metas[name], connection)
            upstream = out
        timings["total"] = round(sum(timings.values()), 3)
        _emit({"seconds": timings, "synthetic": metas["features"]["synthetic"], "stages": metas})
        return 0

    out = Path(args.out)
    upstream = _source(args, settings) if command == "ingest" else args.input
    meta = _run_stage(command, upstream, out, config, connection)
    _publish(args, command, out, meta, connection)
    _emit(meta)
    return 0


def _run_stage(
    name: str, upstream: str | Path, out: Path, config: ChurnConfig, connection: str
) -> dict[str, Any]:
    """One stage from its upstream (the source URI for ingest, else a stage folder) to `out`."""
    from churn_components.data import steps as stages

    if name == "ingest":
        return stages.run_ingest(str(upstream), out, connection)
    if name == "validate":
        return stages.run_validate(upstream, out, config.data.max_rejected_share)
    if name == "preprocess":
        return stages.run_preprocess(upstream, out, config.split.test_size, config.split.seed)
    if name == "features":
        return stages.run_features(upstream, out, config.features.tenure_bands)
    raise AssertionError(name)  # pragma: no cover - argparse restricts the choices


def _source(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.source or settings.data_uri)


def _publish(
    args: argparse.Namespace, stage: str, out_dir: Path, meta: dict[str, Any], conn: str
) -> None:
    if not args.store:
        return
    from churn_components.data import steps as stages

    files = {
        p.name: p
        for p in sorted(out_dir.iterdir())
        if p.is_file() and p.name != stages.METADATA and not p.name.startswith(".")
    }
    stages.publish(args.store, stage, files, meta, conn)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
