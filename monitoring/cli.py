"""`churn monitor`: the drift service, and the delayed-label feed.

    churn monitor serve [--bundle DIR | --model-uri URI] [--port N] [--launch local|kfp|none]
    churn monitor labels FILE          # customerID, churned, date (CSV or Parquet)
    churn monitor status

The database is CHURN_MONITOR_DB_URL (a SQLite file by default; PostgreSQL on
a cluster). `serve` binds CHURN_HOST (127.0.0.1) on CHURN_MONITOR_PORT (8090).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn_core.errors import ConfigError
from churn_core.settings import Settings

if TYPE_CHECKING:
    from churn_core.config import ChurnConfig

HELP = "the drift and decay service (serve), delayed labels (labels), its state (status)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve`, `labels` and `status` subcommands."""
    sub = parser.add_subparsers(dest="monitor_command", required=True)
    serve = sub.add_parser("serve", help="receive the payload logger's CloudEvents")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--bundle", help="the served bundle's folder (its drift detector)")
    source.add_argument(
        "--model-uri",
        help="bundle path, az:// or blob URI, or models:/<name>@<alias> "
        "(CHURN_MODEL_URI; default: the registry champion)",
    )
    serve.add_argument("--host", help="address to bind (CHURN_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CHURN_MONITOR_PORT; default 8090)")
    serve.add_argument("--db-url", help="SQLAlchemy URL (CHURN_MONITOR_DB_URL)")
    serve.add_argument(
        "--launch",
        choices=("local", "kfp", "none"),
        default="local",
        help="how a trigger starts its training run: the local pipeline runner (default), "
        "Kubeflow Pipelines (CHURN_KFP_ENDPOINT / kfp.endpoint), or not at all",
    )
    serve.add_argument(
        "--run-dir",
        default="artifacts/triggered-runs",
        help="local launches: where each run's trigger JSON and log go",
    )
    serve.add_argument("--kfp-endpoint", help="--launch kfp: the KFP API (default kfp.endpoint)")
    serve.add_argument(
        "--pipeline-package",
        default="pipelines/churn_training.yaml",
        help="--launch kfp: the compiled churn-training pipeline",
    )
    labels = sub.add_parser("labels", help="store delayed labels (customerID, churned, date)")
    labels.add_argument("file", help="CSV or Parquet file")
    labels.add_argument("--db-url", help="SQLAlchemy URL (CHURN_MONITOR_DB_URL)")
    status = sub.add_parser("status", help="windows, trigger state and triggers, as JSON")
    status.add_argument("--db-url", help="SQLAlchemy URL (CHURN_MONITOR_DB_URL)")
    status.add_argument("--model", help="model name (default: the registry's model name)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch to the subcommand."""
    from churn_core.config import load_config

    config = load_config(settings.config_path)
    db_url = args.db_url or settings.monitor_db_url
    if args.monitor_command == "labels":
        return _labels(args.file, db_url)
    if args.monitor_command == "status":
        return _status(db_url, args.model or config.registry.model_name)
    return _serve(args, settings, config, db_url)


def _labels(path: str, db_url: str) -> int:
    from churn_monitoring.labels import read_labels
    from churn_monitoring.store import MonitorStore

    labels = read_labels(path)
    store = MonitorStore(db_url)
    try:
        stored = store.add_labels(labels)
    finally:
        store.close()
    print(f"{stored} label(s) stored of {len(labels)} read from {path}")
    return 0


def _status(db_url: str, model: str) -> int:
    from churn_monitoring.store import MonitorStore

    store = MonitorStore(db_url)
    try:
        windows = store.windows(model, limit=10)
        triggers = store.triggers(model)
        state = store.load_trigger_state(model)
    finally:
        store.close()
    print(
        json.dumps(
            {
                "model": model,
                "trigger_state": state,
                "windows": [
                    {
                        "id": w.id,
                        "version": w.model_version,
                        "closed_at": w.closed_at.isoformat(),
                        "samples": w.samples,
                        "drift": w.drift,
                    }
                    for w in windows
                ],
                "triggers": [
                    {
                        "id": t.id,
                        "fired_at": t.fired_at.isoformat(),
                        "reason": t.reason,
                        "run_id": t.run_id,
                        "run_status": t.run_status,
                    }
                    for t in triggers
                ],
            },
            indent=2,
        )
    )
    return 0


def _launcher(args: argparse.Namespace, settings: Settings, config: ChurnConfig) -> Any:
    """How a trigger starts its training run (`churn_monitoring.launch`)."""
    if args.launch == "none":
        return None
    from churn_monitoring.launch import KFPLauncher, LocalLauncher

    if args.launch == "kfp":
        endpoint = args.kfp_endpoint or config.kfp.endpoint
        if not endpoint:
            raise ConfigError("--launch kfp needs --kfp-endpoint or kfp.endpoint in the config")
        from churn_core.config import config_json

        # the same arguments `churn pipeline submit` passes
        return KFPLauncher(
            endpoint,
            args.pipeline_package,
            config.kfp.experiment,
            namespace=config.kfp.namespace,
            arguments={
                "source_uri": settings.data_uri,
                "artifact_store": settings.artifact_root,
                "tracking_uri": settings.mlflow_tracking_uri,
                "config_json": config_json(config),
            },
        )
    return LocalLauncher(
        args.run_dir,
        command=(sys.executable, "-m", "churn_core.cli"),
        config_path=settings.config_path,
    )


def _serve(args: argparse.Namespace, settings: Settings, config: ChurnConfig, db_url: str) -> int:
    import uvicorn
    from prometheus_client import disable_created_metrics

    from churn_inference.loading import fetch_bundle
    from churn_monitoring.app import Worker, build_app
    from churn_monitoring.metrics import monitor_metrics
    from churn_monitoring.service import Monitor, load_watched
    from churn_monitoring.store import MonitorStore

    if args.bundle:
        uri = str(Path(args.bundle).resolve())
    else:
        uri = args.model_uri or settings.model_uri or f"models:/{settings.model_name}@champion"
    with tempfile.TemporaryDirectory(prefix="churn-monitor-") as tmp:
        bundle = fetch_bundle(
            uri,
            Path(tmp),
            settings.azure_storage_connection_string,
            tracking_uri=settings.mlflow_tracking_uri,
        )
        watched = load_watched(bundle)
    store = MonitorStore(db_url)
    disable_created_metrics()  # no *_created series: the alerts read none of them
    metrics = monitor_metrics()
    monitor = Monitor(config, store, watched, metrics, launcher=_launcher(args, settings, config))
    monitor.restore()
    events = config.monitor.events
    # the worker thread holds the GIL for up to the switch interval (5 ms by default) at a
    # time: 0.5 ms keeps the intake's answers fast while a window is being tested
    sys.setswitchinterval(0.0005)
    worker = Worker(monitor, events.queue_size)
    worker.start()
    host = args.host or settings.host
    port = args.port or settings.monitor_port
    logger.info(
        "drift service for %s v%s on http://%s:%d (database %s)",
        watched.name,
        watched.version,
        host,
        port,
        store.url,
    )
    try:
        uvicorn.run(
            build_app(worker, events.max_body_bytes),
            host=host,
            port=port,
            http="httptools",
            loop="uvloop",
            access_log=False,
            log_level="warning",
            lifespan="on",
        )
    finally:
        worker.stop()
        monitor.wait_for_launches(5.0)
        store.close()
    return 0
