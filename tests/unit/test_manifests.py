"""The manifests that go to a cluster validate against the real KServe CRD schema.

No API server runs here, so the schema itself is the judge: jsonschema checks
types and enums, and a pruning check fails on any field the API server would
silently drop (a typo such as `canaryTraficPercent`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.k8s_schema import isvc_schema_or_skip, knative_errors, pruned_fields

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "manifests").glob("*.yaml"))


@pytest.fixture(scope="module")
def isvc_schema() -> dict[str, Any]:
    return isvc_schema_or_skip()


def test_there_are_manifests() -> None:
    assert {p.name for p in MANIFESTS} >= {"inferenceservice.yaml", "canary.yaml"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_crd(manifest: Path, isvc_schema: dict[str, Any]) -> None:
    for doc in yaml.safe_load_all(manifest.read_text()):
        assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
        jsonschema.Draft7Validator(isvc_schema).validate(doc)
        assert pruned_fields(doc, isvc_schema) == []
        assert knative_errors(doc["spec"]["predictor"]["containers"]) == []


def test_pruning_check_catches_a_typo(isvc_schema: dict[str, Any]) -> None:
    doc = yaml.safe_load((ROOT / "manifests" / "canary.yaml").read_text())
    doc["spec"]["predictor"]["canaryTraficPercent"] = doc["spec"]["predictor"].pop(
        "canaryTrafficPercent"
    )
    assert pruned_fields(doc, isvc_schema) == [".spec.predictor.canaryTraficPercent"]


def test_schema_rejects_a_wrong_type(isvc_schema: dict[str, Any]) -> None:
    doc = yaml.safe_load((ROOT / "manifests" / "canary.yaml").read_text())
    doc["spec"]["predictor"]["canaryTrafficPercent"] = "five"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(isvc_schema).validate(doc)


def test_canary_and_stable_differ_only_in_rollout_fields() -> None:
    stable = yaml.safe_load((ROOT / "manifests" / "inferenceservice.yaml").read_text())
    canary = yaml.safe_load((ROOT / "manifests" / "canary.yaml").read_text())
    assert canary["metadata"]["name"] == stable["metadata"]["name"]
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 5
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_container_command_is_a_valid_churn_command(manifest: Path) -> None:
    from churn_core.cli import build_parser

    doc = yaml.safe_load(manifest.read_text())
    (container,) = doc["spec"]["predictor"]["containers"]
    assert container["command"] == ["churn"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve"
    assert args.bundle == "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI
    port = container["ports"][0]["containerPort"]
    assert args.http_port == port
    for probe in ("readinessProbe", "livenessProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["port"] == port
