"""`churn rollout start|step|run|status`: a canary of a new bundle on a KServe InferenceService.

Exit codes: 0 promoted (or, for start and step, the action done); 1 rolled
back (a gate failed); 2 an error or a refusal (bad input, the rolled-out
revision is not the expected one, no rollout in progress); 3 inconclusive
(the deadline passed with gates still holding: the canary's share is back to
0, the stable model serves); 4 not decided yet (`step` waited for KServe's
status or the gates hold: run it again after the next window).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from churn_core.errors import InvalidInput
from churn_core.settings import Settings

HELP = "Canary rollout of a new bundle: 5% -> 25% -> promote, or roll back, by statistical gates"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions and their options."""
    parser.add_argument("action", choices=("start", "step", "run", "status"))
    parser.add_argument("--name", required=True, help="the InferenceService")
    parser.add_argument("--namespace", required=True, help="its namespace")
    parser.add_argument("--storage-uri", help="the new bundle (start, run)")
    parser.add_argument(
        "--expect-revision",
        help="refuse to start unless this is the rolled-out revision (start, run)",
    )
    parser.add_argument(
        "--prometheus-url", help="Prometheus HTTP API (step, run; default rollout.prometheus_url)"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        help="seconds before INCONCLUSIVE (default rollout.deadline_seconds)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the patches, send none")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file outside a pod (default: the in-cluster account)"
    )


def _config(settings: Settings, args: argparse.Namespace) -> Any:
    from churn_core.config import ChurnConfig, load_config

    path = Path(settings.config_path)
    rollout = (load_config(path) if path.is_file() else ChurnConfig()).rollout
    if args.deadline is not None:
        if args.deadline <= 0:
            raise InvalidInput(f"--deadline must be > 0 seconds, got {args.deadline}")
        rollout = rollout.model_copy(update={"deadline_seconds": args.deadline})
    return rollout


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Do the action; the exit code says how it ended (module docstring)."""
    from churn_rollout.controller import EXIT_CODES, RolloutController, status_summary
    from churn_rollout.kube import KubernetesCluster
    from churn_rollout.prometheus import PrometheusSource

    config = _config(settings, args)
    url = args.prometheus_url or config.prometheus_url
    metrics = None
    if url:
        metrics = PrometheusSource(url, settings.model_name, config.revision_label)
    elif args.action in ("step", "run") and not args.dry_run:
        raise InvalidInput(
            "churn rollout step/run needs --prometheus-url (or rollout.prometheus_url)"
        )
    if args.action in ("start", "run") and not args.storage_uri:
        raise InvalidInput(f"churn rollout {args.action} needs --storage-uri (the new bundle)")
    controller = RolloutController(
        KubernetesCluster(kubeconfig=args.kubeconfig),
        args.name,
        args.namespace,
        config,
        metrics,
        dry_run=args.dry_run,
        emit=lambda text: print(text, file=sys.stdout),
    )
    if args.action == "status":
        print(json.dumps(status_summary(controller.read()), indent=2, sort_keys=True))
        return 0
    if args.action == "start":
        outcome = controller.start(args.storage_uri, args.expect_revision)
    elif args.action == "step":
        outcome = controller.step()
    else:
        outcome = controller.run(args.storage_uri, args.expect_revision)
    logger.info("churn rollout %s: %s", args.action, outcome)
    return EXIT_CODES[outcome]
