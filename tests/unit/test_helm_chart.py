"""The Helm chart renders what KServe, Knative and Kubernetes accept, and refuses bad values.

Rendered and linted by the Helm v4 SDK itself (helm-python-sdk: Helm's Go
code behind a C ABI, no `helm` binary), so template functions, value
coalescing and values.schema.json validation are Helm's own. The rendered
InferenceService is judged by the real KServe CRD schema (with the pruning
check of tests/k8s_schema.py) and Knative's container rules; the
ServiceAccount by kubernetes-validate's Kubernetes schemas.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s_schema import isvc_schema_or_skip, knative_errors, pruned_fields

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn"
RELEASE, NAMESPACE = "churn", "churn"
CLIENT_ID = "0f4d7a3e-5b2c-4e8f-9a1d-6c3b2e1f0a9d"
BUNDLE_2 = "https://churnartifacts.blob.core.windows.net/churn/bundles/churn/2"
REGISTRY = {
    "bundle": {"storageUri": "", "registryUri": "models:/churn@champion"},
    "mlflow": {"trackingUri": "http://mlflow.mlflow.svc.cluster.local:5000"},
}
# Kubernetes versions the ServiceAccount is validated against: the chart's floor and the newest.
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "canary-25": {"bundle": {"storageUri": BUNDLE_2}, "canary": {"trafficPercent": 25}},
    "canary-rollback-0": {"bundle": {"storageUri": BUNDLE_2}, "canary": {"trafficPercent": 0}},
    "grpc": {"protocol": "grpc"},
    "resources": {
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": None, "memory": "1Gi"},
        }
    },
    "registry-alias": REGISTRY,
    "registry-version-canary": {
        **REGISTRY,
        "bundle": {"storageUri": "", "registryUri": "models:/churn/7"},
        "canary": {"trafficPercent": 5},
    },
    "workload-identity": {
        "serviceAccount": {"workloadIdentity": {"enabled": True, "clientId": CLIENT_ID}}
    },
    "existing-serviceaccount": {
        "serviceAccount": {
            "create": False,
            "name": "churn-model-reader",
            "workloadIdentity": {"enabled": True},
        }
    },
    "scale-to-zero-no-logger": {
        "autoscaling": {"minReplicas": 0, "maxReplicas": 0, "metric": "rps", "target": 50},
        "logger": {"enabled": False},
        "canary": {"tagRouting": False},
        "metrics": {"prometheusScraping": False},
    },
    "renamed-model": {"model": {"name": "telco-churn"}, "image": {"tag": "0.2.0"}},
}


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def isvc_schema() -> dict[str, Any]:
    return isvc_schema_or_skip()


def render(chart: Any, values: dict[str, Any] | None = None, name: str = RELEASE) -> dict[str, Any]:
    """Rendered manifests by kind (one object each) plus NOTES.txt under "NOTES"."""
    out = chart.render(copy.deepcopy(values), name=name, namespace=NAMESPACE)
    rendered: dict[str, Any] = {"NOTES": out.pop(f"{chart.name}/templates/NOTES.txt", "")}
    for path, text in out.items():
        for doc in yaml.safe_load_all(text):
            if doc:
                assert doc["kind"] not in rendered, f"two {doc['kind']} objects ({path})"
                rendered[doc["kind"]] = doc
    return rendered


def predictor(rendered: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = rendered["InferenceService"]["spec"]["predictor"]
    return spec


def container(rendered: dict[str, Any]) -> dict[str, Any]:
    (only,) = predictor(rendered)["containers"]
    assert isinstance(only, dict)
    return only


def env(rendered: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(rendered)["env"]}


def serve_args(rendered: dict[str, Any]) -> Any:
    from churn_core.cli import build_parser

    c = container(rendered)
    assert c["command"] == ["churn"]
    return build_parser().parse_args(c["args"])


# -- every value set renders objects the cluster accepts


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_inferenceservice_matches_the_kserve_crd(
    chart: Any, isvc_schema: dict[str, Any], values: dict[str, Any]
) -> None:
    isvc = render(chart, values)["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    jsonschema.Draft7Validator(isvc_schema).validate(isvc)
    assert pruned_fields(isvc, isvc_schema) == []
    assert knative_errors(isvc["spec"]["predictor"]["containers"]) == []
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_core_objects_match_the_kubernetes_schema(
    chart: Any, values: dict[str, Any], kube_version: str
) -> None:
    rendered = render(chart, values)
    core = {
        kind: doc for kind, doc in rendered.items() if kind not in {"NOTES", "InferenceService"}
    }
    assert set(core) <= {"ServiceAccount"}, f"unvalidated kinds: {sorted(core)}"
    for doc in core.values():
        kubernetes_validate.validate(doc, kube_version, strict=True)
    if values.get("serviceAccount", {}).get("create", True):
        assert "ServiceAccount" in core


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_container_command_is_a_valid_churn_serve(chart: Any, values: dict[str, Any]) -> None:
    rendered = render(chart, values)
    args = serve_args(rendered)
    c = container(rendered)
    variables = env(rendered)
    assert args.command == "serve"
    assert args.name == values.get("model", {}).get("name", "churn")
    if "STORAGE_URI" in variables:  # KServe's storage initializer fills /mnt/models from it
        assert args.bundle == "/mnt/models" and args.model_uri is None
        assert "CHURN_MLFLOW_TRACKING_URI" not in variables
    else:
        assert args.bundle is None and args.model_uri.startswith("models:/")
        assert variables["CHURN_MLFLOW_TRACKING_URI"].startswith("http")
    (port,) = c["ports"]
    if port["name"] == "h2c":
        assert not args.no_grpc and args.grpc_port == port["containerPort"]
    else:
        assert port["name"] == "http1" and args.no_grpc
        assert args.http_port == port["containerPort"]
    probe = c["readinessProbe"]["httpGet"]
    assert probe["port"] == args.http_port  # REST answers readiness in both protocols
    assert probe["path"] == f"/v2/models/{args.name}/ready"
    assert variables["CHURN_HOST"] == "0.0.0.0"  # reachable from the queue-proxy
    assert variables["OMP_NUM_THREADS"] == "1"
    assert variables["CHURN_LOG_JSON"] in {"true", "false"}


# -- what each setting does


def test_defaults_render_the_plain_manifest(chart: Any) -> None:
    """Chart defaults and manifests/inferenceservice.yaml describe the same service."""
    manifest = yaml.safe_load((ROOT / "manifests" / "inferenceservice.yaml").read_text())
    rendered = render(chart)
    ours, theirs = predictor(rendered), manifest["spec"]["predictor"]
    for key in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "logger"):
        assert ours[key] == theirs[key], key
    assert "canaryTrafficPercent" not in ours
    (their_container,) = theirs["containers"]
    for key in ("name", "image", "command", "readinessProbe", "resources"):
        assert container(rendered)[key] == their_container[key], key
    their_env = {e["name"]: e["value"] for e in their_container["env"]}
    assert their_env.items() <= env(rendered).items()
    from churn_core.cli import build_parser

    their_args = build_parser().parse_args(their_container["args"])
    for key in ("command", "bundle", "http_port", "no_grpc"):
        assert getattr(serve_args(rendered), key) == getattr(their_args, key), key
    for key, value in manifest["metadata"]["annotations"].items():
        assert rendered["InferenceService"]["metadata"]["annotations"][key] == value


def test_canary_sets_the_traffic_share_and_tag_routing(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["canary-25"])
    assert predictor(rendered)["canaryTrafficPercent"] == 25
    annotations = rendered["InferenceService"]["metadata"]["annotations"]
    assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
    assert env(rendered)["STORAGE_URI"] == BUNDLE_2
    assert "25% of requests go to the revision this release created" in rendered["NOTES"]
    assert "canary.trafficPercent=0" in rendered["NOTES"]  # how to roll back


def test_canary_zero_is_a_rollback_not_an_unset_value(chart: Any) -> None:
    assert predictor(render(chart, VALUE_SETS["canary-rollback-0"]))["canaryTrafficPercent"] == 0
    assert "canaryTrafficPercent" not in predictor(
        render(chart, {"canary": {"trafficPercent": None}})
    )


def test_grpc_exposes_one_h2c_port_and_keeps_rest_for_readiness(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["grpc"])
    c = container(rendered)
    assert c["ports"] == [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    assert "--no-grpc" not in c["args"]
    assert c["args"][c["args"].index("--grpc-port") + 1] == "8081"
    assert c["readinessProbe"]["httpGet"]["port"] == 8080
    notes = rendered["NOTES"]
    assert "inference.GRPCInferenceService/ModelReady" in notes and "curl -H" not in notes
    assert '"churn-explainer"' in notes


def test_rest_exposes_one_http1_port(chart: Any) -> None:
    c = container(render(chart))
    assert c["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert "--no-grpc" in c["args"] and "--grpc-port" not in c["args"]


def test_custom_resources_replace_the_defaults(chart: Any) -> None:
    assert container(render(chart, VALUE_SETS["resources"]))["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},  # null removed the CPU limit
    }


def test_registry_uri_is_resolved_by_the_server(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["registry-alias"])
    args = serve_args(rendered)
    assert args.model_uri == "models:/churn@champion" and args.bundle is None
    assert "STORAGE_URI" not in env(rendered)  # no storage initializer
    assert env(rendered)["CHURN_MLFLOW_TRACKING_URI"] == REGISTRY["mlflow"]["trackingUri"]
    assert "Bundle: registry model models:/churn@champion" in rendered["NOTES"]


def test_workload_identity_annotates_the_account_and_labels_the_pods(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["workload-identity"])
    account = rendered["ServiceAccount"]
    assert account["metadata"]["annotations"] == {"azure.workload.identity/client-id": CLIENT_ID}
    assert predictor(rendered)["serviceAccountName"] == account["metadata"]["name"]
    assert predictor(rendered)["labels"]["azure.workload.identity/use"] == "true"
    assert "No AKS workload identity" not in rendered["NOTES"]


def test_without_workload_identity_there_is_no_label_and_the_notes_warn(chart: Any) -> None:
    rendered = render(chart)
    assert "azure.workload.identity/use" not in predictor(rendered)["labels"]
    assert "annotations" not in rendered["ServiceAccount"]["metadata"]
    assert "No AKS workload identity" in rendered["NOTES"]


def test_an_existing_service_account_is_used_not_created(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["existing-serviceaccount"])
    assert "ServiceAccount" not in rendered
    assert predictor(rendered)["serviceAccountName"] == "churn-model-reader"
    assert predictor(rendered)["labels"]["azure.workload.identity/use"] == "true"


def test_scale_to_zero_without_logger(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["scale-to-zero-no-logger"])
    spec = predictor(rendered)
    assert spec["minReplicas"] == 0 and "maxReplicas" not in spec
    assert (spec["scaleMetric"], spec["scaleTarget"]) == ("rps", 50)
    assert "logger" not in spec
    assert set(rendered["InferenceService"]["metadata"]["annotations"]) == {
        "serving.kserve.io/deploymentMode"
    }
    assert "Payload logging" not in rendered["NOTES"]


def test_names_and_labels_come_from_the_helpers(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["renamed-model"], name="prod")
    isvc = rendered["InferenceService"]
    assert isvc["metadata"]["name"] == "prod-churn"
    assert isvc["metadata"]["namespace"] == NAMESPACE
    labels = isvc["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "prod"
    assert labels["app.kubernetes.io/name"] == "churn"
    assert labels["helm.sh/chart"] == "churn-0.1.0"
    selector = {"app.kubernetes.io/instance": "prod", "app.kubernetes.io/name": "churn"}
    assert predictor(rendered)["labels"].items() >= selector.items()  # the pods carry them
    account_labels = rendered["ServiceAccount"]["metadata"]["labels"]
    assert account_labels == {k: v for k, v in labels.items() if k != "app.kubernetes.io/component"}
    assert container(rendered)["image"] == "ghcr.io/churn-platform/churn-serving:0.2.0"


def test_notes_tell_how_to_reach_the_v2_endpoint_and_the_explainer(chart: Any) -> None:
    notes = render(chart, VALUE_SETS["renamed-model"], name="prod")["NOTES"]
    assert f"kubectl get isvc prod-churn -n {NAMESPACE}" in notes
    assert "jsonpath='{.status.url}'" in notes
    assert 'curl -H "Host: ${SERVICE_HOSTNAME}"' in notes
    assert "/v2/models/telco-churn/infer" in notes
    assert "/v2/models/telco-churn-explainer/infer" in notes
    assert "/v1/models/telco-churn:explain" in notes


# -- bad values fail with a message that names the key

SCHEMA_VIOLATIONS = {
    "unknown-key": ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    "unknown-nested-key": ({"canary": {"percent": 5}}, "at '/canary': additional properties"),
    "wrong-type": ({"autoscaling": {"minReplicas": "one"}}, "at '/autoscaling/minReplicas'"),
    "percent-150": ({"canary": {"trafficPercent": 150}}, "at '/canary/trafficPercent': maximum"),
    "fractional-percent": ({"canary": {"trafficPercent": 2.5}}, "at '/canary/trafficPercent'"),
    "unknown-protocol": ({"protocol": "http2"}, "at '/protocol': value must be one of"),
    "client-id-not-a-guid": (
        {"serviceAccount": {"workloadIdentity": {"enabled": True, "clientId": "churn-reader"}}},
        "at '/serviceAccount/workloadIdentity/clientId'",
    ),
    "registry-uri-not-models": (
        {"bundle": {"storageUri": "", "registryUri": "runs:/abc/model"}},
        "at '/bundle/registryUri'",
    ),
    "bad-quantity": ({"resources": {"requests": {"cpu": "lots"}}}, "at '/resources/requests/cpu'"),
}


@pytest.mark.parametrize(
    ("values", "message"), SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys()
)
def test_values_schema_rejects(chart: Any, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match="meet the specifications") as caught:
        render(chart, values)
    assert message in str(caught.value)


NO_BUNDLE = {"bundle": {"storageUri": "", "registryUri": ""}}
CONFLICTS = {
    "two-bundles": (
        {"bundle": {"registryUri": "models:/churn/3"}},
        "bundle.storageUri (https://churnartifacts.blob.core.windows.net/churn/bundles/churn/1) "
        "and bundle.registryUri (models:/churn/3) are both set",
    ),
    "no-bundle": (NO_BUNDLE, "no model bundle: set bundle.storageUri"),
    "az-uri": (
        {"bundle": {"storageUri": "az://churn/bundles/churn/2"}},
        "bundle.storageUri az://churn/bundles/churn/2: KServe's storage initializer does not "
        "read az:// URIs",
    ),
    "registry-without-tracking": (
        {"bundle": {"storageUri": "", "registryUri": "models:/churn@champion"}},
        "bundle.registryUri models:/churn@champion needs mlflow.trackingUri",
    ),
    "canary-on-an-alias": (
        {**REGISTRY, "canary": {"trafficPercent": 5}},
        "canary.trafficPercent=5 with bundle.registryUri models:/churn@champion: a registry "
        "alias is resolved when each pod starts",
    ),
    "min-above-max": (
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (2)",
    ),
    "no-account-to-use": (
        {"serviceAccount": {"create": False}},
        "serviceAccount.create is false but serviceAccount.name is empty",
    ),
    "client-id-while-disabled": (
        {"serviceAccount": {"workloadIdentity": {"clientId": CLIENT_ID}}},
        "serviceAccount.workloadIdentity.clientId is set but "
        "serviceAccount.workloadIdentity.enabled is false",
    ),
    "identity-without-client-id": (
        {"serviceAccount": {"workloadIdentity": {"enabled": True}}},
        "serviceAccount.workloadIdentity.enabled needs serviceAccount.workloadIdentity.clientId",
    ),
    "client-id-on-a-foreign-account": (
        {
            "serviceAccount": {
                "create": False,
                "name": "churn-model-reader",
                "workloadIdentity": {"enabled": True, "clientId": CLIENT_ID},
            }
        },
        "serviceAccount.workloadIdentity.clientId is set but serviceAccount.create is false: "
        'this chart cannot annotate ServiceAccount "churn-model-reader"',
    ),
    "client-id-as-a-raw-annotation": (
        {"serviceAccount": {"annotations": {"azure.workload.identity/client-id": CLIENT_ID}}},
        "serviceAccount.annotations holds azure.workload.identity/client-id",
    ),
}


@pytest.mark.parametrize(("values", "message"), CONFLICTS.values(), ids=CONFLICTS.keys())
def test_conflicting_settings_fail_at_render_time(
    chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError) as caught:
        render(chart, values)
    assert message in str(caught.value)


def test_each_conflict_is_documented_in_the_readme() -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Settings that conflict", 1)[1].split("\n## ", 1)[0]
    defaults = chart_defaults()
    leaves = [k for k, v in defaults.items() if not (isinstance(v, dict) and v)]
    for name, (_, message) in CONFLICTS.items():
        named = {key for key in leaves if key in message}
        assert named, f"{name}: the message names no values key"
        assert {key for key in named if f"`{key}" not in section} == set(), name


def test_a_release_name_kserve_refuses_fails_clearly(chart: Any) -> None:
    with pytest.raises(helm.HelmRenderError, match='InferenceService name "1churn" must start'):
        render(chart, name="1churn")
    isvc = render(chart, {"fullnameOverride": "churn-eu"}, name="1churn")["InferenceService"]
    assert isvc["metadata"]["name"] == "churn-eu"


# -- lint, schema and docs


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_passes(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, copy.deepcopy(values), strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == []


def test_helm_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "churn"
    shutil.copytree(CHART, broken)
    template = broken / "templates" / "serviceaccount.yaml"
    template.write_text(template.read_text().replace("{{- end }}\n", "", 1))
    report = helm.lint(broken, strict=True)
    assert report["errors"], report


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if schema.get("type") == "object" or "properties" in schema:
        found.append((path or "/", schema))
    for key, sub in schema.get("properties", {}).items():
        found += _objects(sub, f"{path}/{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _objects(schema[key], f"{path}/{key}")
    return found


def test_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = _objects(schema)
    assert len(objects) > 10
    for path, node in objects:
        # false, or a typed map (annotations: string values only); never open
        extra = node.get("additionalProperties")
        assert extra is False or (isinstance(extra, dict) and "type" in extra), path
        if extra is not False:
            assert "properties" not in node, f"{path}: a map with named properties"


@functools.cache
def _readme_tool() -> ModuleType:
    """tools/chart_readme.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location(
        "chart_readme", ROOT / "tools" / "chart_readme.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through it
    spec.loader.exec_module(module)
    return module


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, sub in schema.get("properties", {}).items():
        keys.add(f"{prefix}{key}")
        keys |= _schema_keys(sub, f"{prefix}{key}.")
    return keys


def chart_defaults() -> dict[str, Any]:
    """Every dotted key of values.yaml with its default."""
    flat: dict[str, Any] = _readme_tool().flatten(
        yaml.safe_load((CHART / "values.yaml").read_text())
    )
    return flat


def test_every_values_key_is_documented_and_in_the_schema() -> None:
    docs = _readme_tool().parse_values((CHART / "values.yaml").read_text())
    assert len(docs) > 30
    assert [d.key for d in docs if not d.description] == []
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert {d.key for d in docs} == _schema_keys(schema)  # no schema key left undocumented


def test_the_docs_check_catches_an_undocumented_key() -> None:
    tool = _readme_tool()
    docs = tool.parse_values("# -- documented\na: 1\nsection:\n  # -- inner\n  b: 2\nc: 3\n")
    assert {d.key: d.description for d in docs} == {
        "a": "documented",
        "section": "",
        "section.b": "inner",
        "c": "",
    }
    with pytest.raises(ValueError, match="line 2"):
        tool.parse_values("items:\n  - one\n")


def test_chart_readme_values_table_is_current() -> None:
    tool = _readme_tool()
    readme = (CHART / "README.md").read_text()
    assert tool.render_readme(readme) == readme, "run: .venv/bin/python tools/chart_readme.py"
    assert "| `canary.trafficPercent` | integer or null | `null` |" in readme


def test_knative_rules_catch_what_its_webhook_refuses(chart: Any) -> None:
    c = copy.deepcopy(container(render(chart)))
    c["ports"][0]["name"] = "h1c"
    c["ports"].append({"name": "h2c", "containerPort": 8013, "protocol": "TCP"})
    c["env"].append({"name": "PORT", "value": "8080"})
    assert knative_errors([c]) == [
        "2 container ports: Knative routes exactly one",
        "port name 'h1c' is not one of '', 'h2c', 'http1'",
        "port 8013 is reserved by the queue-proxy",
        "env PORT is reserved by Knative",
    ]
