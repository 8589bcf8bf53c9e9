"""Judging Kubernetes objects without an API server: CRD schemas, Knative's rules.

Used by the manifest and the Helm chart tests. Every custom resource the chart
renders is judged by its own project's CRD (`CRDS`: KServe's InferenceService,
Istio's RequestAuthentication and AuthorizationPolicy, the Prometheus
Operator's PodMonitor, ServiceMonitor and PrometheusRule), read from the shared
specs folder (`../shared/specs/<project>/`, or `CHURN_SPECS_DIR`) where each file
is the upstream CRD document, unchanged: jsonschema checks types, enums and
required fields, and `pruned_fields` finds what a structural schema does not
declare, which the API server would silently drop (a typo such as
`canaryTraficPercent`). CEL rules (`x-kubernetes-validations`) are not evaluated.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.ci import missing

ROOT = Path(__file__).resolve().parents[1]
SPECS = Path(os.environ.get("CHURN_SPECS_DIR", ROOT.parent / "shared" / "specs"))


@dataclass(frozen=True)
class Crd:
    """Where one kind's CRD lies in the specs folder, and where it came from upstream."""

    path: str  # under SPECS
    repository: str
    source: str  # the file in that repository (one document taken from it when it holds several)
    ref: str  # tag or version
    # in the shared specs CI gets; the others are requested and, until they arrive, skipped
    # even under CI (a test that needs them says so in its skip reason)
    shared: bool = False


CRDS: dict[tuple[str, str], Crd] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): Crd(
        "kserve/serving.kserve.io_inferenceservices.yaml",
        "kserve/kserve",
        "config/crd/full/serving.kserve.io_inferenceservices.yaml",
        "0.20 (the file the project keeps in its shared specs)",
        shared=True,
    ),
    ("security.istio.io/v1", "RequestAuthentication"): Crd(
        "istio/requestauthentications.security.istio.io.yaml",
        "istio/istio",
        "manifests/charts/base/files/crd-all.gen.yaml",
        "1.30.3",
    ),
    ("security.istio.io/v1", "AuthorizationPolicy"): Crd(
        "istio/authorizationpolicies.security.istio.io.yaml",
        "istio/istio",
        "manifests/charts/base/files/crd-all.gen.yaml",
        "1.30.3",
    ),
    **{
        ("monitoring.coreos.com/v1", kind): Crd(
            f"prometheus-operator/monitoring.coreos.com_{plural}.yaml",
            "prometheus-operator/prometheus-operator",
            f"example/prometheus-operator-crd/monitoring.coreos.com_{plural}.yaml",
            "v0.93.0",
        )
        for kind, plural in (
            ("PodMonitor", "podmonitors"),
            ("ServiceMonitor", "servicemonitors"),
            ("PrometheusRule", "prometheusrules"),
        )
    },
}
CRD = SPECS / CRDS[("serving.kserve.io/v1beta1", "InferenceService")].path


@functools.cache
def load_crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of `kind` at `api_version` from its CRD file."""
    crd_file = SPECS / CRDS[(api_version, kind)].path
    version = api_version.rsplit("/", 1)[1]
    crd = yaml.load(crd_file.read_text(), Loader=yaml.CSafeLoader)  # up to 2 MB: the C loader
    assert crd["spec"]["names"]["kind"] == kind, f"{crd_file} defines {crd['spec']['names']}"
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


def crd_schema_or_skip(api_version: str, kind: str) -> dict[str, Any]:
    """The schema; without the CRD file a CI run fails and a local run skips."""
    crd = CRDS.get((api_version, kind))
    if crd is None:
        raise KeyError(f"no CRD known for {kind} {api_version}: add it to tests/k8s_schema.CRDS")
    if not (SPECS / crd.path).is_file():
        reason = (
            f"{kind} CRD not found at {SPECS / crd.path} (upstream: {crd.repository} "
            f"{crd.source} at {crd.ref})"
        )
        if crd.shared:
            missing(reason)
        pytest.skip(f"{reason}; not yet in the shared specs, so not judged here")
    return load_crd_schema(api_version, kind)


def load_isvc_schema() -> dict[str, Any]:
    """The v1beta1 InferenceService openAPIV3Schema from the KServe CRD."""
    return load_crd_schema("serving.kserve.io/v1beta1", "InferenceService")


def isvc_schema_or_skip() -> dict[str, Any]:
    """The schema; without the CRD file a CI run fails and a local run skips."""
    return crd_schema_or_skip("serving.kserve.io/v1beta1", "InferenceService")


def custom_resource_errors(doc: dict[str, Any]) -> list[str]:
    """What the API server would refuse (schema) or drop (pruning) in a custom resource."""
    if (doc["apiVersion"], doc["kind"]) in EXPLICIT:
        return explicit_errors(doc)
    schema = crd_schema_or_skip(doc["apiVersion"], doc["kind"])
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    return errors + [f"{path}: unknown field (pruned)" for path in pruned_fields(doc, schema)]


# Kept at the root of every object whatever its CRD's schema declares (some, Istio's among
# them, declare only spec and status).
ROOT_FIELDS = {"apiVersion", "kind", "metadata"}


def pruned_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in `doc` that a structural schema does not declare (the API server drops them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(doc, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if not path and key in ROOT_FIELDS and key not in (props or {}):
                continue
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
# Its field masks (pkg/apis/serving/fieldmask.go, SecurityContextMask): the container
# securityContext fields a Knative revision keeps; privileged only as false.
KNATIVE_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation",
    "capabilities",
    "privileged",
    "readOnlyRootFilesystem",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "seccompProfile",
}


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
        security = container.get("securityContext", {})
        for field in sorted(set(security) - KNATIVE_SECURITY_CONTEXT):
            errors.append(f"securityContext.{field} is not allowed by Knative")
        if security.get("privileged"):
            errors.append("securityContext.privileged: true is not allowed by Knative")
        if security.get("capabilities", {}).get("add"):
            errors.append("securityContext.capabilities.add needs a Knative feature flag")
    return errors


# -- Knative Eventing's Trigger: no CRD schema of it is in the shared specs, so it is judged
# by this explicit schema, written from Knative Eventing v1.x's Go types
# (pkg/apis/eventing/v1/trigger_types.go, pkg/apis/duck/v1/destination.go and
# delivery_types.go) and its webhook (trigger_validation.go): unknown fields fail (Knative's
# CRD declares spec with preserve-unknown-fields, so the API server itself would not refuse
# them: this is stricter than the cluster on purpose), `broker` and `subscriber` are
# required, the subscriber has a ref or a URI (relative when a ref is given), filter
# attributes are CloudEvents attribute names (lower-case letters and digits) with exact
# string values, and the back-off delay is an ISO 8601 duration.
_KREFERENCE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "name", "apiVersion"],
    "properties": {
        "kind": {"type": "string", "minLength": 1},
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "apiVersion": {"type": "string", "minLength": 1},
        "address": {"type": "string"},
    },
}
_DESTINATION = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["ref"]}, {"required": ["uri"]}],
    "properties": {
        "ref": _KREFERENCE,
        "uri": {"type": "string", "minLength": 1},
        "CACerts": {"type": "string"},
        "audience": {"type": "string"},
    },
}
TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "eventing.knative.dev/v1"},
        "kind": {"const": "Trigger"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["broker", "subscriber"],
            "properties": {
                "broker": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "filter": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "attributes": {
                            "type": "object",
                            "propertyNames": {"pattern": "^[a-z0-9]+$"},
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "subscriber": _DESTINATION,
                "delivery": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "deadLetterSink": _DESTINATION,
                        "retry": {"type": "integer", "minimum": 0},
                        "timeout": {"type": "string"},
                        "backoffPolicy": {"enum": ["linear", "exponential"]},
                        "backoffDelay": {
                            "type": "string",
                            "pattern": "^P(T([0-9]+(\\.[0-9]+)?[HMS])+|[0-9]+D)$",
                        },
                        "retryAfterMax": {"type": "string"},
                    },
                },
            },
        },
    },
}
EXPLICIT: dict[tuple[str, str], dict[str, Any]] = {
    ("eventing.knative.dev/v1", "Trigger"): TRIGGER_SCHEMA,
}


def explicit_errors(doc: dict[str, Any]) -> list[str]:
    """What the explicit schema of `doc`'s kind refuses, plus the webhook's own rules."""
    schema = EXPLICIT[(doc["apiVersion"], doc["kind"])]
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    subscriber = doc.get("spec", {}).get("subscriber", {})
    uri = subscriber.get("uri")
    if "ref" in subscriber and uri and "://" in uri:
        errors.append("spec/subscriber/uri: must be relative when a ref is given")
    return errors


# Objects of the drift service and the rollout controller share kinds with the predictor's
# (NetworkPolicy, ServiceAccount, Service): they are keyed `Kind/name`, the rest by kind.
OWN_KEY_COMPONENTS = {"monitor", "rollout"}


def object_key(doc: dict[str, Any]) -> str:
    """`Kind`, or `Kind/name` for an object of the drift service or the rollout controller."""
    component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    if component in OWN_KEY_COMPONENTS:
        return f"{doc['kind']}/{doc['metadata']['name']}"
    return str(doc["kind"])


def by_key(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rendered objects by `object_key`; two objects with one key fail."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        key = object_key(doc)
        assert key not in out, f"two objects keyed {key}"
        out[key] = doc
    return out
