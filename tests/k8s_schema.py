"""Judging Kubernetes objects without an API server: the KServe CRD schema, Knative's rules.

Used by the manifest and the Helm chart tests. The InferenceService CRD is the
real one (`../shared/specs/kserve/`, or `CHURN_SPECS_DIR`): jsonschema checks
types and enums, and `pruned_fields` finds what a structural schema does not
declare, which the API server would silently drop (a typo such as
`canaryTraficPercent`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml

from tests.ci import missing

ROOT = Path(__file__).resolve().parents[1]
CRD = (
    Path(os.environ.get("CHURN_SPECS_DIR", ROOT.parent / "shared" / "specs"))
    / "kserve"
    / "serving.kserve.io_inferenceservices.yaml"
)


@functools.cache
def load_isvc_schema() -> dict[str, Any]:
    """The v1beta1 InferenceService openAPIV3Schema from the KServe CRD."""
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)  # 2 MB: the C loader
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def isvc_schema_or_skip() -> dict[str, Any]:
    """The schema; without the CRD file a CI run fails and a local run skips."""
    if not CRD.is_file():
        missing(f"KServe CRD not found at {CRD}")
    return load_isvc_schema()


def pruned_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in `doc` that a structural schema does not declare (the API server drops them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(doc, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if props is not None and key in props:
                found += pruned_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned_fields(value, extra, f"{path}.{key}")
            elif props is not None or extra is False:
                found.append(f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(doc):
            found += pruned_fields(item, schema["items"], f"{path}[{i}]")
    return found


# Knative Serving's webhook (pkg/apis/serving/k8s_validation.go) on the serving container:
# one port, named "", "h2c" or "http1", TCP, none of the queue-proxy's ports, no reserved env.
KNATIVE_PORT_NAMES = {"", "h2c", "http1"}
KNATIVE_RESERVED_PORTS = {8008, 8012, 8013, 8022, 9090, 9091}
KNATIVE_RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}


def knative_errors(containers: list[dict[str, Any]]) -> list[str]:
    """What Knative's webhook would refuse in a serverless predictor's containers."""
    errors: list[str] = []
    ports = [p for c in containers for p in c.get("ports", [])]
    if len(ports) > 1:
        errors.append(f"{len(ports)} container ports: Knative routes exactly one")
    for port in ports:
        if port.get("name", "") not in KNATIVE_PORT_NAMES:
            errors.append(f"port name {port['name']!r} is not one of '', 'h2c', 'http1'")
        if port.get("protocol", "TCP") != "TCP":
            errors.append(f"port protocol {port['protocol']} is not TCP")
        if port.get("containerPort") in KNATIVE_RESERVED_PORTS:
            errors.append(f"port {port['containerPort']} is reserved by the queue-proxy")
    for container in containers:
        for env in container.get("env", []):
            if env["name"] in KNATIVE_RESERVED_ENV:
                errors.append(f"env {env['name']} is reserved by Knative")
        for probe in ("readinessProbe", "livenessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in {p.get("name") for p in ports}:
                errors.append(f"{probe} names port {port!r}, not the serving port")
    return errors
