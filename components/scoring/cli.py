"""`churn score`: the retention list for a whole customer file.

    churn score --input customers.csv|.parquet|az://...|https://... --out list.parquet
                [--model-uri URI] [--no-reasons] [--top N] [--config model_config.yaml]
                [--chunk-rows N] [--workers N]

Writes the ranked list as Parquet and CSV (customerID, churn_probability,
churn, reasons, suggestion, what_if_probability, expected_value, rank), the
rejected cells (`<out>.rejected.csv`), a report (`<out>.report.json`), the
summary (`<out>.summary.md`, also printed) and the score distribution
(`<out>.scores.png`). The model is a bundle folder, a blob URI or
``models:/<name>@<alias>`` (default `CHURN_MODEL_URI`, else
``models:/<registry model>@champion``). The chunks are scored in one process
per core (`--workers`); the list is the same for any number.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from churn_core.settings import Settings

HELP = "score a customer file: the ranked retention list with reasons and offers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `score` options."""
    parser.add_argument(
        "--input", required=True, help="customer file (CSV or Parquet; path or URI)"
    )
    parser.add_argument(
        "--out", required=True, help="the list (.parquet; a .csv is written beside)"
    )
    parser.add_argument("--model-uri", default="", help="bundle folder, blob URI or models:/...")
    parser.add_argument("--no-reasons", action="store_true", help="probabilities and EV only")
    parser.add_argument("--top", type=int, default=None, help="campaign size for the summary")
    parser.add_argument("--config", default=None, help="model_config.yaml (CHURN_CONFIG_PATH)")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="scoring processes (default 0: one per core, at most one per chunk)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Score, write the list and the summary, print the summary."""
    from tqdm import tqdm

    from churn_components.scoring import steps, summary
    from churn_core.config import load_config

    config = load_config(args.config or settings.config_path)
    uri = args.model_uri or settings.model_uri or f"models:/{config.registry.model_name}@champion"
    connection = settings.azure_storage_connection_string
    workers = steps.choose_workers(args.workers, args.input, args.chunk_rows, connection)
    # the bundle folder stays until the workers have loaded it
    with tempfile.TemporaryDirectory(prefix="churn-score-") as tmp:
        local = steps.fetch_bundle(uri, Path(tmp), connection, settings.mlflow_tracking_uri)
        scorer = steps.load_scorer(local, config.explainer)
        with tqdm(unit="rows", desc="scoring", file=sys.stderr, disable=None) as bar:
            result = steps.score_file(
                args.input,
                scorer,
                config.economics,
                max_rejected_share=config.data.max_rejected_share,
                reasons=not args.no_reasons,
                chunk_rows=args.chunk_rows,
                workers=workers,
                connection_string=connection,
                progress=bar.update,
            )
    paths = steps.write_outputs(result, args.out)
    top = args.top if args.top is not None else summary.DEFAULT_TOP
    numbers = summary.summarize(result.scores, config.economics, config.features.tenure_bands, top)
    text = summary.markdown(numbers, result.report)
    base = paths["parquet"].with_suffix("")
    (base.parent / f"{base.name}.summary.md").write_text(text)
    (base.parent / f"{base.name}.scores.png").write_bytes(
        summary.distribution_png(result.scores, scorer.threshold)
    )
    sys.stdout.write(text)
    return 0
