"""Start one training run per trigger, with the trigger's reason and evidence attached.

The drift service never imports the training code (import contracts in
`pyproject.toml`): a run is started through the pipeline's own entry points.

- `LocalLauncher` (the embedded default): ``churn pipeline run --local ...
  --trigger FILE`` as a subprocess, its output in a log file beside the
  trigger's JSON.
- `KFPLauncher` (a cluster): ``kfp.Client(host=...).create_run_from_pipeline_package``
  with the compiled ``churn-training`` package and a ``trigger`` argument.

Both return the run's id from `launch`. A run that could not be started raises
`LaunchError` naming why; the caller records it with the trigger (a failed
start is never retried here: one trigger, at most one run).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from churn_core.errors import ChurnError, ConfigError

logger = logging.getLogger(__name__)

TRIGGER_PARAMETER = "trigger"  # churn-training's pipeline parameter (pipelines/training.py)


class LaunchError(ChurnError):
    """A training run could not be started; the message says why."""

    status_code = 502


def trigger_json(trigger: Mapping[str, Any]) -> str:
    """The run's ``trigger`` argument: ``{"reason": ..., "evidence": [...]}`` as JSON text."""
    reason = trigger.get("reason")
    if not isinstance(reason, str) or not reason:
        raise LaunchError(f"a trigger needs a 'reason' sentence, got {reason!r}")
    return json.dumps(
        {"reason": reason, "evidence": list(trigger.get("evidence", []))}, sort_keys=True
    )


class Launcher(Protocol):
    """Starts one training run for one trigger; returns the run's id or raises LaunchError."""

    def launch(self, trigger: Mapping[str, Any]) -> str:
        """Start the run."""
        ...


def pipeline_parameters(package: str | Path) -> dict[str, Any]:
    """The compiled pipeline's declared parameters (root ``inputDefinitions``)."""
    import yaml

    try:
        spec = yaml.safe_load(Path(package).read_text())
        return dict(spec["root"]["inputDefinitions"]["parameters"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ConfigError(f"pipeline package {package}: no pipeline parameters ({err})") from err


class LocalLauncher:
    """``churn pipeline run --local --trigger FILE`` as a subprocess, one per trigger.

    `command` is the CLI (``churn``, or ``python -m churn_core.cli``); `env`
    is added to this process's environment (the ``CHURN_*`` settings of the
    run: data, artifact root, tracking URI). Each launch writes
    ``<run_dir>/<run id>.trigger.json`` and ``<run id>.log``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        command: Sequence[str] = ("churn",),
        config_path: str | None = None,
        source: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.command = list(command)
        self.config_path = config_path
        self.source = source
        self.env = dict(env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def arguments(self, trigger_file: Path) -> list[str]:
        """The command line for one run."""
        args = [*self.command, "pipeline", "run", "--local", "--trigger", str(trigger_file)]
        if self.config_path:
            args += ["--config", self.config_path]
        if self.source:
            args += ["--source", self.source]
        return args

    def launch(self, trigger: Mapping[str, Any]) -> str:
        """Start the run in the background; its id (``local-<time>-<hex>``)."""
        text = trigger_json(trigger)
        run_id = f"local-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            trigger_file = self.run_dir / f"{run_id}.trigger.json"
            trigger_file.write_text(text)
            with open(self.run_dir / f"{run_id}.log", "wb") as log:
                self.processes[run_id] = subprocess.Popen(  # noqa: S603 - our own CLI
                    self.arguments(trigger_file),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,  # outlives a restart of the service
                )
        except OSError as err:
            raise LaunchError(
                f"local training run could not start ({self.command}): {err}"
            ) from err
        logger.info("started local training run %s: %s", run_id, trigger["reason"])
        return run_id

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Block until the run ends; LaunchError with the log's tail when it failed."""
        process = self.processes[run_id]
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired as err:
            raise LaunchError(
                f"local training run {run_id} still running after {timeout}s"
            ) from err
        if code != 0:
            tail = (self.run_dir / f"{run_id}.log").read_text(errors="replace").splitlines()[-20:]
            raise LaunchError(
                f"local training run {run_id} failed (exit {code}): " + "\n".join(tail)
            )


class KFPLauncher:
    """``churn-training`` on a Kubeflow Pipelines endpoint, through ``kfp.Client``.

    `arguments` are the run's other pipeline parameters (``source_uri``,
    ``artifact_store``, ``tracking_uri``, ``config_json``: see ``churn pipeline
    submit``); every one must be declared by the package, which must declare
    ``trigger``.
    """

    def __init__(
        self,
        host: str,
        pipeline_package: str | Path,
        experiment: str,
        *,
        namespace: str | None = None,
        arguments: Mapping[str, str] | None = None,
        run_name_prefix: str = "churn-retrain",
    ) -> None:
        self.host = host
        self.pipeline_package = str(pipeline_package)
        self.experiment = experiment
        self.namespace = namespace
        self.base_arguments = dict(arguments or {})
        self.run_name_prefix = run_name_prefix
        declared = pipeline_parameters(pipeline_package)
        unknown = sorted(set(self.base_arguments) - set(declared))
        if TRIGGER_PARAMETER not in declared or unknown or TRIGGER_PARAMETER in self.base_arguments:
            raise ConfigError(
                f"pipeline package {pipeline_package}: declares {sorted(declared)}; the trigger "
                f"launcher passes {TRIGGER_PARAMETER!r} itself and needs it declared; "
                f"undeclared arguments {unknown}"
            )

    def arguments(self, trigger: Mapping[str, Any]) -> dict[str, str]:
        """The run's arguments: the configured ones and ``trigger`` (JSON)."""
        return {**self.base_arguments, TRIGGER_PARAMETER: trigger_json(trigger)}

    def launch(self, trigger: Mapping[str, Any]) -> str:
        """Create the run; its KFP run id."""
        import kfp
        import urllib3
        from kfp_server_api.exceptions import ApiException

        arguments = self.arguments(trigger)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")
                client = kfp.Client(host=self.host, namespace=self.namespace)
            result = client.create_run_from_pipeline_package(
                self.pipeline_package,
                arguments=arguments,
                run_name=f"{self.run_name_prefix}-{time.strftime('%Y%m%d-%H%M%S')}",
                experiment_name=self.experiment,
                namespace=self.namespace,
            )
        except (urllib3.exceptions.HTTPError, ApiException, OSError, ValueError) as err:
            raise LaunchError(f"KFP endpoint {self.host} did not start the run: {err}") from err
        logger.info("started KFP run %s on %s: %s", result.run_id, self.host, trigger["reason"])
        return str(result.run_id)
