"""`churn pipeline ...`: run the training pipeline locally, compile it, submit it.

    churn pipeline run --local [--source URI] [--no-register] [--replace-unreadable-champion]
                               [--trigger FILE] [--artifact-store URI]
    churn pipeline run --local --pipeline scoring --input FILE [--model-uri URI] [--out FILE]
    churn pipeline compile [--output pipelines/churn_training.yaml]   (both IRs without --output)
    churn pipeline submit [--endpoint URL] [--source URI] [--tracking-uri URI]
                          [--artifact-store URI] [--package FILE] [--trigger FILE]

`run --local` executes `churn-training` with `kfp.local.SubprocessRunner` in
this environment, on the embedded defaults: data from `CHURN_DATA_URI`,
artifacts (KFP outputs and bundles) under `CHURN_ARTIFACT_ROOT`, MLflow at
`CHURN_MLFLOW_TRACKING_URI` (SQLite file by default). When the data source is
a local path that does not exist, it generates the SYNTHETIC stand-in data
set, says so loudly, and every artifact is marked synthetic. It prints the
wall time of each stage and the total.

Both `run --local` and `submit` pass the loaded `model_config.yaml`
(``--config``, else ``CHURN_CONFIG_PATH``) as the run's ``config_json``
argument: every stage of the run, the data stages included, uses it.
``--trigger FILE`` (JSON: the retraining trigger's reason and evidence, as the
drift service writes it) becomes the run's ``trigger`` argument, logged in the
MLflow run of the model the run produces.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

from churn_core.settings import Settings

HELP = "training and scoring pipelines: run --local, compile, submit"

TRIGGER_HELP = "JSON file: the retraining trigger's reason and evidence (logged in MLflow)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `run`, `compile` and `submit`."""
    sub = parser.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="run churn-training (locally with --local)")
    run.add_argument(
        "--local", action="store_true", help="run with kfp.local.SubprocessRunner (required)"
    )
    run.add_argument("--source", default=None, help="data URI (default CHURN_DATA_URI)")
    run.add_argument("--config", default=None, help="model_config.yaml (CHURN_CONFIG_PATH)")
    run.add_argument(
        "--no-register", action="store_true", help="skip MLflow (bundle version = content hash)"
    )
    run.add_argument(
        "--replace-unreadable-champion",
        action="store_true",
        help=(
            "let the challenger replace a champion that cannot be read or scored (sets "
            "selection.replace_unreadable_champion for this run; recorded in the decision)"
        ),
    )
    run.add_argument("--trigger", default=None, help=TRIGGER_HELP)
    run.add_argument(
        "--artifact-store",
        default=None,
        help="also publish the stages' outputs and the bundle to this store (path, file://, "
        "az://, https blob); kfp.local's own outputs stay under CHURN_ARTIFACT_ROOT",
    )
    run.add_argument(
        "--pipeline",
        choices=("training", "scoring"),
        default="training",
        help="which pipeline to run (scoring: churn-scoring, the retention list)",
    )
    run.add_argument("--input", default=None, help="scoring: the customer file (path or URI)")
    run.add_argument(
        "--model-uri", default="", help="scoring: bundle folder, blob or models:/ (champion)"
    )
    run.add_argument("--out", default=None, help="scoring: also copy the list here (.parquet)")
    run.add_argument("--shard-rows", type=int, default=None, help="scoring: rows per shard")
    run.add_argument("--chunk-rows", type=int, default=None, help="scoring: rows read at a time")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="stream kfp.local's full output (default: <artifact root>/kfp/last-run.log)",
    )
    comp = sub.add_parser("compile", help="compile churn-training to IR YAML")
    comp.add_argument("--config", default=None, help="model_config.yaml (CHURN_CONFIG_PATH)")
    comp.add_argument(
        "--output", default=None, help="IR file (default pipelines/churn_training.yaml)"
    )
    submit = sub.add_parser("submit", help="submit churn-training to a KFP endpoint")
    submit.add_argument("--config", default=None, help="model_config.yaml (CHURN_CONFIG_PATH)")
    submit.add_argument("--endpoint", default=None, help="KFP API endpoint (default kfp.endpoint)")
    submit.add_argument("--package", default=None, help="IR file (default: compile now)")
    submit.add_argument("--source", default=None, help="data URI (default CHURN_DATA_URI)")
    submit.add_argument(
        "--tracking-uri", default=None, help="MLflow URI reachable from the cluster"
    )
    submit.add_argument(
        "--artifact-store", default=None, help="artifact store URI (default CHURN_ARTIFACT_ROOT)"
    )
    submit.add_argument("--trigger", default=None, help=TRIGGER_HELP)
    submit.add_argument("--run-name", default=None, help="run name (default churn-training-<time>)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch to the action."""
    from churn_core.config import load_config

    config = load_config(args.config or settings.config_path)
    if args.pipeline_command == "compile":
        return _compile(args, config)
    if args.pipeline_command == "submit":
        return _submit(args, settings, config)
    if not args.local:
        from churn_core.errors import InvalidInput

        raise InvalidInput(
            "churn pipeline run: only --local is supported; use `submit` for a cluster"
        )
    if getattr(args, "pipeline", "training") == "scoring":
        return _run_scoring(args, settings, config)
    if args.replace_unreadable_champion:
        logger.warning(
            "operator override: a champion that cannot be read or scored will be replaced "
            "(selection.replace_unreadable_champion)"
        )
        config = config.model_copy(
            update={
                "selection": config.selection.model_copy(
                    update={"replace_unreadable_champion": True}
                )
            }
        )
    return run_local(
        settings,
        config,
        source=args.source,
        register=not args.no_register,
        verbose=args.verbose,
        trigger=trigger_text(args.trigger),
        artifact_store=args.artifact_store,
    )


def _compile(args: argparse.Namespace, config: Any) -> int:
    from churn_pipelines import scoring
    from churn_pipelines.training import IR_FILE, compile_pipeline

    path = compile_pipeline(config, args.output or IR_FILE)
    print(f"compiled churn-training to {path}")
    if args.output is None:  # --output names the training IR only
        print(f"compiled churn-scoring to {scoring.compile_pipeline(config)}")
    return 0


def _run_scoring(args: argparse.Namespace, settings: Settings, config: Any) -> int:
    import shutil

    from churn_core.errors import InvalidInput
    from churn_pipelines import scoring

    if not args.input:
        raise InvalidInput("churn pipeline run --pipeline scoring: --input FILE is required")
    location = scoring.run_local(
        settings,
        config,
        input_uri=args.input,
        model_uri=args.model_uri or settings.model_uri,
        shard_rows=args.shard_rows or scoring.SHARD_ROWS,
        chunk_rows=args.chunk_rows or scoring.CHUNK_ROWS,
        verbose=args.verbose,
    )
    if args.out:
        target = Path(args.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".parquet", ".csv"):
            shutil.copyfile(Path(location).with_suffix(suffix), target.with_suffix(suffix))
        print(f"list copied to {target.with_suffix('.parquet')} and .csv")
    return 0


def trigger_text(path: str | None) -> str:
    """The ``--trigger`` file's JSON text (checked: an object with a ``reason``); "" without."""
    if path is None:
        return ""
    from churn_components.registry.steps import trigger_record
    from churn_core.errors import InvalidInput

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InvalidInput(f"--trigger {path}: cannot read it: {err}") from err
    trigger_record(text)
    return text


def submit_arguments(args: argparse.Namespace, settings: Settings, config: Any) -> dict[str, str]:
    """The run's arguments: one per pipeline parameter, `config_json` the loaded config.

    `config_json` is always passed, so the run uses the configuration loaded
    here in every stage, whatever default the package (``--package``) was
    compiled with.
    """
    from churn_core.errors import ConfigError
    from churn_pipelines.training import config_json

    tracking_uri = (
        args.tracking_uri if args.tracking_uri is not None else settings.mlflow_tracking_uri
    )
    if tracking_uri.startswith(("sqlite:", "file:")):
        raise ConfigError(
            f"tracking URI {tracking_uri} is a local file the cluster cannot reach: pass "
            "--tracking-uri http(s)://<mlflow server> (or --tracking-uri '' for no registry)"
        )
    return {
        "source_uri": args.source or settings.data_uri,
        "artifact_store": args.artifact_store or settings.artifact_root,
        "tracking_uri": tracking_uri,
        "config_json": config_json(config),
        "trigger": trigger_text(getattr(args, "trigger", None)),
    }


def _submit(args: argparse.Namespace, settings: Settings, config: Any) -> int:
    import tempfile

    import kfp
    import urllib3
    from kfp_server_api.exceptions import ApiException

    from churn_core.errors import ConfigError, NotReady
    from churn_pipelines.training import compile_pipeline

    endpoint = args.endpoint or config.kfp.endpoint
    if not endpoint:
        raise ConfigError("no KFP endpoint: set kfp.endpoint (KFP_ENDPOINT) or pass --endpoint")
    arguments = submit_arguments(args, settings, config)
    with tempfile.TemporaryDirectory(prefix="churn-ir-") as tmp:
        package = args.package or str(compile_pipeline(config, Path(tmp) / "churn_training.yaml"))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")
                client = kfp.Client(host=endpoint, namespace=config.kfp.namespace)
            result = client.create_run_from_pipeline_package(
                package,
                arguments=arguments,
                run_name=args.run_name or f"churn-training-{time.strftime('%Y%m%d-%H%M%S')}",
                experiment_name=config.kfp.experiment,
                namespace=config.kfp.namespace,
            )
        except (urllib3.exceptions.HTTPError, ApiException) as err:
            raise NotReady(f"KFP endpoint {endpoint} did not accept the run: {err}") from err
    print(f"submitted run {result.run_id} to {endpoint} (experiment {config.kfp.experiment})")
    return 0


def _is_local_path(uri: str) -> bool:
    parsed = urlparse(uri)
    return parsed.scheme in ("", "file") or len(parsed.scheme) == 1  # 1 letter: a drive


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme == "file" else Path(uri)


def resolve_source(source: str, artifact_root: Path, rows: int) -> tuple[str, bool]:
    """The data URI to ingest; a generated SYNTHETIC CSV when a local source is missing."""
    if not _is_local_path(source) or _local_path(source).is_file():
        return source, False
    from churn_model.synthetic import BANNER, write_synthetic_csv

    target = artifact_root / "synthetic" / "telco-synthetic.csv"
    write_synthetic_csv(target, rows=rows, seed=0)
    banner = "=" * 78
    message = (
        f"{banner}\n{BANNER}\n"
        f"The data file {source} does not exist, so this run uses a GENERATED data set\n"
        f"({rows} rows, written to {target}). Every artifact, the bundle and the MLflow run\n"
        "are marked synthetic. Point CHURN_DATA_URI at the real Telco CSV for a real model.\n"
        f"{banner}"
    )
    print(message, file=sys.stderr, flush=True)
    logger.warning("using SYNTHETIC data from %s (source %s is missing)", target, source)
    return str(target), True


class _StageClock(logging.Filter):
    """Times each kfp.local task from its 'Executing task' to its 'finished' log line.

    A filter on the root logger, not a handler: kfp.local swaps the root
    handlers for every task, but leaves the logger's filters alone.
    """

    _ANSI = re.compile(r"\x1b\[[0-9;]*m")
    _START = re.compile(r"Executing task '?([\w\-]+)'?")
    _END = re.compile(r"Task '?([\w\-]+)'? finished with status")

    def __init__(self, progress: TextIO | None = None) -> None:
        super().__init__()
        self.progress = progress
        self.t0 = time.perf_counter()
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        text = self._ANSI.sub("", str(record.msg))
        now = time.perf_counter()
        if m := self._START.search(text):
            self.started[m.group(1)] = now
            self._say(now, f"{m.group(1)} ...")
        elif (m := self._END.search(text)) and m.group(1) in self.started:
            self.seconds[m.group(1)] = now - self.started[m.group(1)]
            status = "done" if "SUCCESS" in text else "FAILED"
            self._say(now, f"{m.group(1)} {status} in {self.seconds[m.group(1)]:.1f} s")
        return True

    def _say(self, now: float, what: str) -> None:
        if self.progress is not None:
            print(f"[{now - self.t0:6.1f} s] {what}", file=self.progress, flush=True)


def run_local(
    settings: Settings,
    config: Any,
    *,
    source: str | None = None,
    register: bool = True,
    verbose: bool = False,
    trigger: str = "",
    artifact_store: str | None = None,
) -> int:
    """Run churn-training through kfp.local; print the time per stage and the total.

    The stages publish their outputs and the bundle to `artifact_store` (e.g. an
    Azure Blob container), default the local artifact root.

    kfp.local prints every component's executor input and outputs (thousands of
    lines); unless `verbose`, that goes to `<artifact root>/kfp/last-run.log`
    and the terminal shows one progress line per stage, and the log's tail when
    a stage fails.
    """
    from churn_model.registry import absolute_tracking_uri
    from churn_pipelines.training import build_pipeline, config_json

    started = time.perf_counter()
    root = Path(settings.artifact_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    source_uri, synthetic = resolve_source(
        source or settings.data_uri, root, config.data.synthetic_rows
    )
    tracking_uri = absolute_tracking_uri(settings.mlflow_tracking_uri) if register else ""
    with kfp_local(root, verbose) as clock:
        task = build_pipeline(config)(
            source_uri=source_uri,
            artifact_store=artifact_store or str(root),
            tracking_uri=tracking_uri,
            config_json=config_json(config),
            trigger=trigger,
        )
    total = time.perf_counter() - started
    version = str(task.output)
    print(_summary(clock.seconds, total, root, config, version, synthetic))
    return 0


@contextlib.contextmanager
def kfp_local(root: Path, verbose: bool) -> Iterator[_StageClock]:
    """kfp.local's subprocess runner under `root`/kfp, timing the stages.

    Without `verbose`, kfp.local's output (its handler and the streamed component
    logs write to sys.stdout) goes to `root`/kfp/last-run.log, whose last lines are
    printed when the run fails; resource requests (for the cluster) are not warned about.
    """
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root / "kfp"),
        raise_on_error=True,
    )
    log_path = root / "kfp" / "last-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    clock = _StageClock(progress=None if verbose else sys.stderr)
    logging.getLogger().addFilter(clock)
    try:
        with contextlib.ExitStack() as stack:
            if not verbose:
                log_file = stack.enter_context(open(log_path, "w"))
                stack.enter_context(contextlib.redirect_stdout(log_file))
                print(f"kfp.local output: {log_path}", file=sys.stderr, flush=True)
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            yield clock
    except Exception:
        if not verbose:
            tail = log_path.read_text(errors="replace").splitlines()[-60:]
            print("\n".join(["", f"--- last lines of {log_path} ---", *tail]), file=sys.stderr)
        raise
    finally:
        logging.getLogger().removeFilter(clock)


def _summary(
    seconds: dict[str, float], total: float, root: Path, config: Any, version: str, synthetic: bool
) -> str:
    import json

    lines = ["", "churn-training (kfp.local) stage times:"]
    for name, sec in seconds.items():
        lines.append(f"  {name:<22} {sec:7.1f} s")
    lines.append(f"  {'total (wall)':<22} {total:7.1f} s")
    meta_path = root / "bundles" / config.registry.model_name / version / "metadata.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        cv, test = meta["metrics"]["cv"], meta["metrics"]["test"]
        gate = meta.get("selection", {}).get("gate", {})
        lines += [
            "",
            f"model {meta['name']} v{meta['version']} ({meta['kind']}), "
            f"threshold {meta['threshold']:.3f} ({meta['thresholds']['served_rule']})"
            + ("  [SYNTHETIC DATA]" if synthetic or meta.get("synthetic") else ""),
            f"  CV   ROC-AUC {cv['roc_auc']:.4f}  PR-AUC {cv['pr_auc']:.4f}  F1 {cv['f1']:.4f}  "
            f"ECE {cv['ece']:.4f}",
            f"  test ROC-AUC {test['roc_auc']:.4f}  PR-AUC {test['pr_auc']:.4f}  "
            f"F1 {test['f1']:.4f}  ECE {test['ece']:.4f}",
            f"  gate: {gate.get('reason', '-')}",
            f"  bundle: {meta_path.parent}",
        ]
    return "\n".join(lines)
