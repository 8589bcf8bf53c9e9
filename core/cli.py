"""The `churn` command. Each subcommand lives beside the code it drives.

A subcommand module defines `HELP`, `add_arguments(parser)` and
`run(args, settings) -> int`; it imports heavy libraries inside `run` only,
so `churn --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from churn_core.errors import ChurnError
from churn_core.logs import configure_logging
from churn_core.settings import Settings

SUBCOMMANDS = {
    "data": "churn_components.data.cli",
    "pipeline": "churn_pipelines.cli",
    "serve": "churn_inference.cli",
    "predict": "churn_inference.predict_cli",
    "score": "churn_components.scoring.cli",
    "monitor": "churn_monitoring.cli",
    "rollout": "churn_rollout.cli",
}

logger = logging.getLogger("churn")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="churn", description="Telecom churn platform.")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (CHURN_LOG_LEVEL)")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(
            sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP)
        )
        # the module whose run() handles this subcommand
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `churn` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(
        args.log_level or settings.log_level,
        json_logs=bool(args.log_json) or settings.log_json,
    )
    module = importlib.import_module(SUBCOMMANDS[args.command])
    try:
        return int(module.run(args, settings) or 0)
    except ChurnError as err:
        logger.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
