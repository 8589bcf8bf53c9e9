"""`churn predict`: send customers to a running `churn serve` and print what it says.

    churn predict --input customers.csv [--explain] [--url URL] [--model NAME]
    churn predict --sample 5 [--seed 0] [--explain]

`--input` reads a CSV (path or any URI `churn` reads) with the Telco columns;
the id and label columns stay on this side, the label is shown beside the
answer; `--explain` adds under each customer the reasons, the retention
suggestions and, for each suggestion, the model's probability with its change
applied (``what if Contract = One year: 52.8% -> 21.4%``). `--sample N` takes
N random customers of the configured data (`CHURN_DATA_URI`), or of the
generated SYNTHETIC stand-in when that local file does not exist, and says so
loudly. The server answers over the v2 REST protocol; a request it rejects is
shown with its message and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from churn_core.errors import InvalidInput
from churn_core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

HELP = "Send customers to a running churn server (v2 REST): probability, decision, reasons"

SYNTHETIC_POOL = 2000  # generated customers a synthetic sample is drawn from

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `churn predict`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="CSV", help="customers to score (Telco columns)")
    source.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="N random customers of CHURN_DATA_URI (synthetic stand-in when it is absent)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument(
        "--url", help="server base URL (default http://127.0.0.1:<CHURN_HTTP_PORT>)"
    )
    parser.add_argument("--model", help="served model name (CHURN_MODEL_NAME; default churn)")
    parser.add_argument(
        "--explain",
        action="store_true",
        help=(
            "also the top reasons, retention suggestions and their what-ifs "
            "(the <model>-explainer model)"
        ),
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")


def _is_local(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # 1 letter: a Windows drive


def sample_customers(settings: Settings, rows: int, seed: int) -> tuple[pd.DataFrame, bool]:
    """`rows` random customers of the configured data, or synthetic ones; (frame, synthetic)."""
    from churn_core.errors import NotFound
    from churn_core.store import read_uri
    from churn_inference.client import read_customers
    from churn_model.synthetic import BANNER, generate_csv_bytes, is_synthetic

    uri = settings.data_uri
    synthetic = False
    try:
        frame = read_customers(read_uri(uri, settings.azure_storage_connection_string), uri)
    except NotFound:
        if not _is_local(uri):
            raise
        banner = "=" * 78
        print(
            f"{banner}\n{BANNER}\nThe data file {uri} does not exist: these {rows} customers\n"
            "are GENERATED. Point CHURN_DATA_URI at the real Telco CSV for real customers.\n"
            f"{banner}",
            file=sys.stderr,
            flush=True,
        )
        pool = generate_csv_bytes(rows=max(rows, SYNTHETIC_POOL), seed=seed)
        frame, synthetic = read_customers(pool, "synthetic"), True
    if rows > len(frame):
        logger.warning("--sample %d: the data has %d customers; taking all", rows, len(frame))
    picked = frame.sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)
    ids = picked["customerID"] if "customerID" in picked.columns else []
    return picked, synthetic or is_synthetic(ids)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Score the customers and print the table."""
    from churn_core.store import read_uri
    from churn_inference.client import V2Client, format_table, read_customers
    from churn_model.contract import LABEL_COLUMN
    from churn_model.synthetic import announce

    if args.sample is not None and args.sample < 1:
        raise InvalidInput(f"--sample must be at least 1, got {args.sample}")
    url = args.url or f"http://127.0.0.1:{settings.http_port}"
    client = V2Client(url, args.model or settings.model_name, timeout=args.timeout)
    if args.input:
        frame = read_customers(
            read_uri(args.input, settings.azure_storage_connection_string), args.input
        )
        synthetic = False
    else:
        frame, synthetic = sample_customers(settings, args.sample, args.seed)
    if synthetic:
        announce(f"{len(frame)} customers sent to the server are synthetic")
    scored = client.score(frame, explain=args.explain)
    ids = scored.ids or [str(i + 1) for i in range(len(frame))]  # as the server echoed them
    actual = frame[LABEL_COLUMN].tolist() if LABEL_COLUMN in frame.columns else None
    churners = sum(scored.churn)
    print(
        f"{client.model} v{scored.model_version} at {client.url}: {len(frame)} customers, "
        f"{churners} predicted to churn" + ("  [SYNTHETIC CUSTOMERS]" if synthetic else "")
    )
    print(format_table(ids, scored, actual))
    return 0
