"""The KFP pipeline `churn-training`, from the data to the registered model bundle.

Data stages, three trainings in parallel, evaluation, selection against the
champion, registration and the bundle.

::

    ingest -> validate -> preprocess -> features -+-> train_logistic -+
                                                  +-> train_xgboost  -+-> evaluate -> select
                                                  +-> train_mlp      -+                 |
                                                                           register <---+

`build_pipeline(config)` returns the pipeline function with the configuration
as the default of its ``config_json`` parameter (the ``kfp`` section, which
only the submitting client reads, is left out so the IR does not depend on the
environment). Every stage that reads configuration, the data stages included,
reads it from that one parameter: a run given another ``config_json`` uses it
throughout, and the IR holds no configuration value anywhere else.
``trigger`` is the retraining trigger's JSON (its reason and evidence; empty
for a run started by hand): the register step logs it in the MLflow run of the
model the run produces (``trigger.json``, tag ``trigger_reason``).
`compile_pipeline` writes the IR YAML committed as ``pipelines/churn_training.yaml``.
"""

# No `from __future__ import annotations` here: KFP reads the pipeline's annotations.
from pathlib import Path
from typing import Any

from churn_core.config import ChurnConfig, config_json

PIPELINE_NAME = "churn-training"
IR_FILE = Path(__file__).resolve().with_name("churn_training.yaml")  # the source tree
# Modest requests so the three trainings fit side by side on a small node.
TRAIN_CPU = "1"
TRAIN_MEMORY = "2G"


def default_source_uri() -> str:
    """`Settings.data_uri`'s default (not the environment's value: the IR must not vary)."""
    from churn_core.settings import Settings

    return str(Settings.model_fields["data_uri"].default)


def build_pipeline(config: ChurnConfig) -> Any:
    """The `churn-training` pipeline function for this configuration."""
    from kfp import dsl

    from churn_components.data.component import add_data_stages
    from churn_components.registry import component as registry
    from churn_components.training import component as kt

    compiled_config = config_json(config)
    source_default = default_source_uri()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=(
            "Churn training: ingest, validate, preprocess, features; logistic regression, "
            "XGBoost and a torch MLP with 5x5 repeated stratified CV; calibration and "
            "thresholds on training folds; selection gated against the MLflow champion; "
            "the model bundle to the artifact store and the registry."
        ),
    )
    def churn_training(
        source_uri: str = source_default,
        artifact_store: str = "",
        tracking_uri: str = "",
        config_json: str = compiled_config,
        trigger: str = "",
    ) -> str:
        data = add_data_stages(
            source_uri=source_uri, artifact_store=artifact_store, config_json=config_json
        )
        train = data.preprocess.outputs["train"]
        test = data.preprocess.outputs["test"]
        transform = data.features.outputs["transform"]
        trained = {}
        for kind, component in (
            ("logistic", kt.train_logistic),
            ("xgboost", kt.train_xgboost),
            ("mlp", kt.train_mlp),
        ):
            task = component(train=train, transform=transform, config_json=config_json)
            task.set_display_name(f"train-{kind}")
            task.set_cpu_request(TRAIN_CPU).set_memory_request(TRAIN_MEMORY)
            trained[kind] = task.outputs["candidate"]
        evaluation = kt.evaluate(
            **trained,
            train=train,
            test=test,
            transform=transform,
            config_json=config_json,
        )
        selection = registry.select(
            evaluation=evaluation.outputs["evaluation"],
            test=test,  # the gate scores champion and challenger on these rows
            config_json=config_json,
            tracking_uri=tracking_uri,
        )
        selection.set_caching_options(False)  # depends on the registry's champion
        registration = registry.register(
            **trained,
            evaluation=evaluation.outputs["evaluation"],
            decision=selection.outputs["decision"],
            raw=data.ingest.outputs["raw"],
            train=train,
            test=test,
            transform=transform,
            config_json=config_json,
            tracking_uri=tracking_uri,
            artifact_store=artifact_store,
            trigger=trigger,
        )
        registration.set_caching_options(False)  # writes to the registry
        return registration.outputs["Output"]

    return churn_training


def compile_pipeline(config: ChurnConfig, path: str | Path = IR_FILE) -> Path:
    """Compile the pipeline to IR YAML at `path`."""
    from kfp import compiler

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), package_path=str(target))
    return target
