"""`churn serve`: the predictor and its explainer in KServe's ModelServer."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from churn_core.errors import InvalidInput
from churn_core.settings import Settings

HELP = "Serve the churn model over KServe v2 REST + gRPC (and v1), with its explainer"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `churn serve`; unset ones come from CHURN_* settings."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--bundle", help="a local bundle folder")
    source.add_argument(
        "--model-uri",
        help="bundle path, az:// or https blob URI, or models:/<name>@<alias> "
        "(CHURN_MODEL_URI; default models:/<registry.model_name>@champion)",
    )
    parser.add_argument("--name", help="served model name (CHURN_MODEL_NAME; default churn)")
    parser.add_argument("--host", help="address to bind (CHURN_HOST; default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, help="REST port (CHURN_HTTP_PORT; default 8080)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port (CHURN_GRPC_PORT; default 8081)")
    parser.add_argument("--no-grpc", action="store_true", help="serve REST only")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (REST and gRPC)"
    )
    parser.add_argument(
        "--log-url",
        help="send every inference request and response as a CloudEvent to this URL, "
        "as KServe's payload logger does (CHURN_LOG_URL; default off)",
    )
    parser.add_argument(
        "--log-queue-size",
        type=int,
        default=None,
        help="payload events held for sending at most; beyond it they are dropped and "
        "counted (default 10000)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help="refuse a REST body or gRPC message larger than this, before parsing: 413 / "
        "RESOURCE_EXHAUSTED (CHURN_MAX_BODY_BYTES; default 8 MiB)",
    )
    parser.add_argument(
        "--max-batch-rows",
        type=int,
        default=None,
        help="refuse a request of more customers than this: 413 / RESOURCE_EXHAUSTED "
        "(CHURN_MAX_BATCH_ROWS; default 10000)",
    )
    parser.add_argument(
        "--kserve-rest",
        action="store_true",
        help="serve v2 REST infer with KServe's own route instead of the lean one",
    )


def model_uri(args: argparse.Namespace, settings: Settings, registered_name: str) -> str:
    """The bundle to serve: --bundle, --model-uri, CHURN_MODEL_URI, else the registry champion."""
    if args.bundle:
        return str(Path(args.bundle).resolve())
    return str(args.model_uri or settings.model_uri or f"models:/{registered_name}@champion")


def limits(args: argparse.Namespace, settings: Settings) -> tuple[int, int]:
    """The body-size and batch-rows limits: the options, else CHURN_MAX_BODY_BYTES / _ROWS.

    Raises:
        InvalidInput: a limit that is not a positive number.
    """
    body = args.max_body_bytes if args.max_body_bytes is not None else settings.max_body_bytes
    rows = args.max_batch_rows if args.max_batch_rows is not None else settings.max_batch_rows
    for flag, value in (("--max-body-bytes", body), ("--max-batch-rows", rows)):
        if value < 1:
            raise InvalidInput(
                f"{flag} (CHURN_{flag[2:].replace('-', '_').upper()}) must be "
                f"a positive number, got {value}"
            )
    return body, rows


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Load the bundle and serve until interrupted."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per request: see DESIGN.md
    argv, sys.argv = sys.argv, sys.argv[:1]  # kserve parses sys.argv when imported
    try:
        from churn_inference.predictor import ChurnExplainerModel, ChurnPredictor
        from churn_inference.server import ChurnModelServer
    finally:
        sys.argv = argv
    from churn_core.config import ChurnConfig, load_config

    config_path = Path(settings.config_path)
    if config_path.is_file():
        config = load_config(config_path)
    else:
        logger.warning("%s not found: default explainer settings, no retention", config_path)
        config = ChurnConfig()
    if not args.access_log:
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if settings.workers != 1:
        logger.warning(
            "CHURN_WORKERS=%d ignored: one process serves REST and gRPC (KServe's gRPC server "
            "is one process whatever the worker count); scale with replicas",
            settings.workers,
        )
    name = args.name or settings.model_name
    uri = model_uri(args, settings, config.registry.model_name)
    max_body_bytes, max_batch_rows = limits(args, settings)
    predictor = ChurnPredictor(
        name,
        uri,
        explainer_config=config.explainer,
        connection_string=settings.azure_storage_connection_string,
        tracking_uri=settings.mlflow_tracking_uri,
        max_batch_rows=max_batch_rows,
    )
    predictor.load()
    explainer = ChurnExplainerModel(predictor)
    log_url = args.log_url or os.environ.get("CHURN_LOG_URL")
    payload_logger = None
    if log_url:
        from churn_inference.payload_log import DEFAULT_QUEUE_SIZE, PayloadLogger

        try:
            payload_logger = PayloadLogger(log_url, args.log_queue_size or DEFAULT_QUEUE_SIZE)
        except ValueError as err:
            raise InvalidInput(str(err)) from err
    server = ChurnModelServer(
        host=args.host or settings.host,
        http_port=args.http_port or settings.http_port,
        grpc_port=args.grpc_port or settings.grpc_port,
        enable_grpc=not args.no_grpc,
        fast_rest=not args.kserve_rest,
        access_log=args.access_log,
        payload_logger=payload_logger,
        max_body_bytes=max_body_bytes,
        max_batch_rows=max_batch_rows,
    )
    server.start([predictor, explainer])
    return 0
