"""`python -m churn_inference`: the same as `churn serve` (a lean container entry point)."""

from __future__ import annotations

import argparse
import sys

from churn_core.errors import ChurnError
from churn_core.logs import configure_logging
from churn_core.settings import Settings
from churn_inference import cli


def main(argv: list[str] | None = None) -> int:
    """Parse `churn serve` options, configure logging, serve."""
    parser = argparse.ArgumentParser(prog="python -m churn_inference", description=cli.HELP)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (CHURN_LOG_LEVEL)")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    cli.add_arguments(parser)
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(
        args.log_level or settings.log_level, json_logs=bool(args.log_json) or settings.log_json
    )
    try:
        return cli.run(args, settings)
    except ChurnError as err:
        cli.logger.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
