"""The Helm chart renders what KServe, Knative, Istio and Kubernetes accept, and refuses bad values.

Rendered and linted by the Helm v4 SDK itself (helm-python-sdk: Helm's Go
code behind a C ABI, no `helm` binary), so template functions, value
coalescing and values.schema.json validation are Helm's own. Every rendered
custom resource is judged by its own project's CRD schema (KServe, Istio, the
Prometheus Operator; with the pruning check of tests/k8s_schema.py), the
InferenceService also by Knative's container rules, and every core object
(ServiceAccount, NetworkPolicy, Service, ConfigMap) by kubernetes-validate's
Kubernetes schemas. The alert rules and the dashboard's queries are run by
promtool in test_chart_monitoring.py.
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
import kubernetes_validate
import pytest
import yaml

from tests.k8s_schema import CRDS, EXPLICIT, by_key, custom_resource_errors, knative_errors

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn"
RELEASE, NAMESPACE = "churn", "churn"
CLIENT_ID = "0f4d7a3e-5b2c-4e8f-9a1d-6c3b2e1f0a9d"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUDIENCE = "6e7b8a44-3c1d-4f2e-9b0a-5d4c3b2a1f00"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
AUTH = {"auth": {"enabled": True, "tenantId": TENANT, "audiences": [AUDIENCE]}}
MONITORS = {
    "metrics": {"prometheusScraping": False, "podMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
}
CORE_KINDS = {
    "ServiceAccount",
    "NetworkPolicy",
    "Service",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Deployment",
    "Job",
    "Role",
    "RoleBinding",
}
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
        "monitor": {"enabled": False},
        "canary": {"tagRouting": False},
        "metrics": {"prometheusScraping": False},
    },
    "renamed-model": {"model": {"name": "telco-churn"}, "image": {"tag": "0.2.0"}},
    "auth": AUTH,
    "monitors": MONITORS,
    "service-monitor-grpc": {
        "protocol": "grpc",
        "metrics": {"prometheusScraping": False, "serviceMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    "logger-to-a-service": {
        "logger": {"broker": "", "url": "http://churn-drift.churn.svc.cluster.local:8080/events"}
    },
    "no-network-policy": {"networkPolicy": {"enabled": False}},
    "monitor-on-postgresql": {
        "monitor": {
            "launch": "kfp",
            "database": {
                "type": "postgresql",
                "postgresql": {"existingSecret": "churn-monitor-db"},
            },
            "env": [
                {"name": "CHURN_KFP_ENDPOINT", "value": "https://kfp.example.internal"},
                {
                    "name": "CHURN_GITHUB_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "churn-trigger", "key": "token"}},
                },
            ],
        },
        "mlflow": {"trackingUri": "http://mlflow.mlflow.svc.cluster.local:5000"},
    },
    "monitor-on-an-existing-claim": {
        "monitor": {
            "database": {"persistence": {"existingClaim": "churn-monitor-old", "size": "5Gi"}},
            "modelUri": "models:/churn/3",
        },
        "mlflow": {"trackingUri": "http://mlflow.mlflow.svc.cluster.local:5000"},
    },
    "rollout-job": {
        "rollout": {
            "prometheusUrl": "http://prometheus-operated.monitoring.svc.cluster.local:9090",
            "job": {"storageUri": BUNDLE_2, "dryRun": True},
            "extraSubjects": [
                {
                    "kind": "User",
                    "name": "5c1d7e0a-8f2b-4d3c-9e6a-1b0f2c3d4e5f",
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            ],
        },
        "serviceAccount": {"workloadIdentity": {"enabled": True, "clientId": CLIENT_ID}},
    },
    "no-monitor-no-rollout": {"monitor": {"enabled": False}, "rollout": {"enabled": False}},
    "everything": {
        **AUTH,
        "bundle": {"storageUri": BUNDLE_2},
        "canary": {"trafficPercent": 5},
        "serviceAccount": {"workloadIdentity": {"enabled": True, "clientId": CLIENT_ID}},
        "metrics": {
            "prometheusScraping": False,
            "podMonitor": {"enabled": True},
            "monitorLabels": {"release": "kube-prometheus-stack"},
        },
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "grafanaDashboard": {"enabled": True},
        "networkPolicy": {
            "extraNamespaces": ["churn-rollout"],
            # null drops a default label (an empty map would merge with the defaults)
            "prometheus": {
                "namespace": "kube-system",
                "podLabels": {"app.kubernetes.io/name": None},
            },
        },
    },
}


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def is_canary(values: dict[str, Any] | None) -> bool:
    return (values or {}).get("canary", {}).get("trafficPercent") is not None


def render(
    chart: Any,
    values: dict[str, Any] | None = None,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    upgrade: bool | None = None,
) -> dict[str, Any]:
    """Rendered objects by key (tests/k8s_schema.object_key) plus NOTES.txt under "NOTES".

    A canary is rendered as an upgrade (there is a revision to share the traffic
    with), anything else as a first install, unless `upgrade` says otherwise.
    """
    upgrade = is_canary(values) if upgrade is None else upgrade
    out = chart.render(
        copy.deepcopy(values),
        name=name,
        namespace=namespace,
        is_install=not upgrade,
        is_upgrade=upgrade,
    )
    notes = out.pop(f"{chart.name}/templates/NOTES.txt", "")
    docs = [doc for text in out.values() for doc in yaml.safe_load_all(text) if doc]
    rendered: dict[str, Any] = {"NOTES": notes, **by_key(docs)}
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
def test_custom_resources_match_their_projects_crds(chart: Any, values: dict[str, Any]) -> None:
    rendered = render(chart, values)
    custom = {
        key: doc
        for key, doc in rendered.items()
        if key != "NOTES" and doc["kind"] not in CORE_KINDS
    }
    known = set(CRDS) | set(EXPLICIT)
    for key, doc in custom.items():
        assert (doc["apiVersion"], doc["kind"]) in known, f"{key} {doc['apiVersion']}: no schema"
    isvc = custom["InferenceService"]
    assert knative_errors(isvc["spec"]["predictor"]["containers"]) == []
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"

    def shared_first(item: tuple[str, dict[str, Any]]) -> bool:
        crd = CRDS.get((item[1]["apiVersion"], item[1]["kind"]))
        return crd is not None and not crd.shared

    # the shared CRDs and the explicit schemas first: a kind whose CRD has not arrived yet
    # skips only at the end
    for key, doc in sorted(custom.items(), key=shared_first):
        assert custom_resource_errors(doc) == [], key


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_core_objects_match_the_kubernetes_schema(
    chart: Any, values: dict[str, Any], kube_version: str
) -> None:
    rendered = render(chart, values)
    core = {k: d for k, d in rendered.items() if k != "NOTES" and d["kind"] in CORE_KINDS}
    for doc in core.values():
        kubernetes_validate.validate(doc, kube_version, strict=True)
    if values.get("serviceAccount", {}).get("create", True):
        assert "ServiceAccount" in core
    assert ("NetworkPolicy" in core) == values.get("networkPolicy", {}).get("enabled", True)


def test_the_crd_checks_catch_unknown_and_mistyped_fields(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["everything"])
    policy = copy.deepcopy(rendered["AuthorizationPolicy"])
    policy["spec"]["rules"][0]["from"][0]["source"]["requestPrincipal"] = ["*"]  # no "s"
    assert custom_resource_errors(policy) == [
        ".spec.rules[0].from[0].source.requestPrincipal: unknown field (pruned)"
    ]
    monitor = copy.deepcopy(rendered["PodMonitor"])
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = 8080  # a name, not a number
    assert any("podMetricsEndpoints/0/port" in e for e in custom_resource_errors(monitor))
    rule = copy.deepcopy(rendered["PrometheusRule"])
    del rule["spec"]["groups"][0]["name"]
    assert any("'name' is a required property" in e for e in custom_resource_errors(rule))


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


# -- security: the container, the network, the token


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_server_runs_unprivileged_on_a_read_only_root(
    chart: Any, values: dict[str, Any]
) -> None:
    rendered = render(chart, values)
    c = container(rendered)
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,  # the image's churn user
        "runAsGroup": 1000,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # the one writable path: tempfile's /tmp (a registry bundle is downloaded there)
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert predictor(rendered)["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]


def test_knative_rules_refuse_a_privileged_container(chart: Any) -> None:
    c = copy.deepcopy(container(render(chart)))
    c["securityContext"].update(privileged=True, procMount="Unmasked")
    c["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    assert knative_errors([c]) == [
        "securityContext.procMount is not allowed by Knative",
        "securityContext.privileged: true is not allowed by Knative",
        "securityContext.capabilities.add needs a Knative feature flag",
    ]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _namespaces(peers: list[dict[str, Any]]) -> list[str]:
    return [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers]


def test_network_policy_admits_only_the_gateway_knative_and_prometheus(chart: Any) -> None:
    rendered = render(chart)
    policy = rendered["NetworkPolicy"]["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], predictor(rendered)["labels"])
    assert policy["policyTypes"] == ["Ingress"]
    everything, prometheus = policy["ingress"]
    assert _namespaces(everything["from"]) == ["aks-istio-ingress", "knative-serving"]
    assert "ports" not in everything and all(
        set(p) == {"namespaceSelector"} for p in everything["from"]
    )
    (peer,) = prometheus["from"]
    assert _namespaces([peer]) == ["monitoring"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert prometheus["ports"] == [{"port": 8080, "protocol": "TCP"}]  # /metrics only
    assert (
        "accept connections only from namespaces\naks-istio-ingress, knative-serving"
        in (rendered["NOTES"])
    )


def test_network_policy_follows_its_settings(chart: Any) -> None:
    policy = render(chart, VALUE_SETS["everything"])["NetworkPolicy"]["spec"]
    everything, prometheus = policy["ingress"]
    assert _namespaces(everything["from"]) == [
        "aks-istio-ingress",
        "knative-serving",
        "churn-rollout",
    ]
    assert prometheus["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    unscraped = render(chart, VALUE_SETS["scale-to-zero-no-logger"])["NetworkPolicy"]["spec"]
    assert len(unscraped["ingress"]) == 1  # nothing scrapes: Prometheus is not let in
    assert "NetworkPolicy" not in render(chart, VALUE_SETS["no-network-policy"])


def test_request_authentication_trusts_the_tenants_v2_tokens_for_the_audience(
    chart: Any,
) -> None:
    rendered = render(chart, AUTH)
    spec = rendered["RequestAuthentication"]["spec"]
    assert _selects(spec["selector"]["matchLabels"], predictor(rendered)["labels"])
    assert spec["jwtRules"] == [
        {
            "issuer": ISSUER,
            "jwksUri": f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys",
            "audiences": [AUDIENCE],
        }
    ]


def _allows(policy: dict[str, Any], request: dict[str, Any]) -> bool:
    """Istio's ALLOW semantics for the fields the chart uses: any rule whose parts all match."""
    assert policy["action"] == "ALLOW"

    def matches(values: list[str], value: str | None) -> bool:
        return value is not None and any(
            v == value or (v.endswith("*") and value.startswith(v[:-1])) for v in values
        )

    def source_ok(source: dict[str, Any]) -> bool:
        checks = {"requestPrincipals": "principal", "namespaces": "namespace"}
        assert set(source) <= set(checks), source
        return all(matches(source[k], request.get(v)) for k, v in checks.items() if k in source)

    def operation_ok(operation: dict[str, Any]) -> bool:
        checks = {"ports": "port", "paths": "path", "methods": "method"}
        assert set(operation) <= set(checks), operation
        return all(
            matches(operation[k], str(request.get(v))) for k, v in checks.items() if k in operation
        )

    def condition_ok(condition: dict[str, Any]) -> bool:
        header = condition["key"].removeprefix("request.headers[").removesuffix("]")
        return matches(condition["values"], request.get("headers", {}).get(header))

    return any(
        all(source_ok(f["source"]) for f in rule.get("from", []))
        and all(operation_ok(o["operation"]) for o in rule.get("to", []))
        and all(condition_ok(c) for c in rule.get("when", []))
        for rule in policy["rules"]
    )


def test_authorization_policy_requires_a_token_except_for_knative_and_metrics(
    chart: Any,
) -> None:
    rendered = render(chart, AUTH)
    policy = rendered["AuthorizationPolicy"]["spec"]
    assert _selects(policy["selector"]["matchLabels"], predictor(rendered)["labels"])
    infer = {"method": "POST", "path": "/v2/models/churn/infer", "port": 8012}
    gateway = {**infer, "namespace": "aks-istio-ingress"}
    assert not _allows(policy, gateway)  # no token: RequestAuthentication alone lets it pass
    assert _allows(policy, {**gateway, "principal": f"{ISSUER}/3b9f2c1e-user"})
    assert not _allows(policy, {**gateway, "principal": "https://sts.windows.net/x/0f4d"})
    activator = {**infer, "namespace": "knative-serving"}
    assert not _allows(policy, activator)  # a forwarded request keeps its token or fails
    assert _allows(policy, {**activator, "principal": f"{ISSUER}/3b9f2c1e-user"})
    assert _allows(policy, {**activator, "headers": {"K-Network-Probe": "queue"}})
    assert _allows(policy, {"namespace": "knative-serving", "port": 9090, "path": "/metrics"})
    assert not _allows(policy, {"namespace": "aks-istio-ingress", "port": 9090})
    scrape = {"method": "GET", "path": "/metrics", "port": 8080}
    assert _allows(policy, scrape)
    assert not _allows(policy, {**scrape, "method": "POST"})
    assert not _allows(policy, {**scrape, "path": "/v2/models/churn/infer"})
    unscraped = {**AUTH, "metrics": {"prometheusScraping": False}}
    assert not _allows(render(chart, unscraped)["AuthorizationPolicy"]["spec"], scrape)


def test_without_auth_there_are_no_istio_policies_and_the_notes_say_so(chart: Any) -> None:
    rendered = render(chart)
    assert not {"RequestAuthentication", "AuthorizationPolicy"} & set(rendered)
    assert "No token is asked for (auth.enabled=false)" in rendered["NOTES"]
    assert "Authorization: Bearer" not in rendered["NOTES"]


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_notes_with_auth_tell_how_to_get_and_send_a_token(chart: Any, protocol: str) -> None:
    notes = render(chart, {**AUTH, "protocol": protocol})["NOTES"]
    assert f"az login --tenant {TENANT}" in notes
    assert (
        f"export TOKEN=$(az account get-access-token --scope {AUDIENCE}/.default "
        "--query accessToken -o tsv)"
    ) in notes
    assert "requestedAccessTokenVersion" in notes  # v1.0 tokens carry another issuer
    calls = [line for line in notes.splitlines() if "curl -H" in line or "grpcurl" in line]
    assert calls and all('-H "Authorization: Bearer ${TOKEN}"' in line for line in calls)


# -- the payload logger stays in the namespace


def test_the_logger_posts_to_the_namespaces_broker(chart: Any) -> None:
    url = "http://broker-ingress.knative-eventing.svc.cluster.local/{}/default"
    assert predictor(render(chart))["logger"]["url"] == url.format(NAMESPACE)
    assert predictor(render(chart, namespace="churn-eu"))["logger"]["url"] == url.format("churn-eu")
    renamed = {"logger": {"broker": "payloads"}, "cluster": {"eventingNamespace": "eventing"}}
    assert predictor(render(chart, renamed))["logger"]["url"] == (
        f"http://broker-ingress.eventing.svc.cluster.local/{NAMESPACE}/payloads"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://churn-drift.churn.svc.cluster.local:8080/events",
        "http://churn-drift.churn.svc/events",
        "http://churn-drift.churn",
        "http://churn-drift:8080",
        "http://broker-ingress.knative-eventing.svc.cluster.local/churn/payloads",
        "http://broker-ingress.knative-eventing/churn/default/",
    ],
)
def test_a_logger_url_inside_the_namespace_is_accepted(chart: Any, url: str) -> None:
    rendered = render(chart, {"logger": {"broker": "", "url": url}})
    assert predictor(rendered)["logger"]["url"] == url
    assert f"CloudEvent to {url}" in rendered["NOTES"]


@pytest.mark.parametrize(
    "url",
    [
        "https://collector.example.com/events",
        "http://churn-drift.monitoring.svc.cluster.local/events",
        "http://broker-ingress.knative-eventing.svc.cluster.local/monitoring/default",
        "http://broker-ingress.knative-eventing.svc.cluster.local/churn",
        "http://10.0.12.7:8080/events",
        "http://churn-drift.churn.svc.cluster.local.attacker.example/events",
    ],
)
def test_a_logger_url_outside_the_namespace_fails(chart: Any, url: str) -> None:
    with pytest.raises(helm.HelmRenderError) as caught:
        render(chart, {"logger": {"broker": "", "url": url}})
    assert f"logger.url {url} points outside namespace churn" in str(caught.value)


# -- observability: monitors, rules, dashboard


def test_no_prometheus_operator_objects_by_default(chart: Any) -> None:
    rendered = render(chart)
    assert not {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap", "Service"} & set(
        rendered
    )


@pytest.mark.parametrize(("protocol", "port"), [("rest", "http1"), ("grpc", "h2c")])
def test_pod_monitor_scrapes_the_predictors_metrics_port(
    chart: Any, protocol: str, port: str
) -> None:
    rendered = render(chart, {**MONITORS, "protocol": protocol})
    monitor = rendered["PodMonitor"]["spec"]
    assert _selects(monitor["selector"]["matchLabels"], predictor(rendered)["labels"])
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert endpoint["port"] == port == container(rendered)["ports"][0]["name"]
    assert endpoint["path"] == "/metrics" and endpoint["interval"] == "30s"
    revision, *address = endpoint["relabelings"]
    assert revision == {
        "sourceLabels": ["__meta_kubernetes_pod_label_serving_knative_dev_revision"],
        "targetLabel": "revision",
    }
    # gRPC: Knative declares only the h2c port; /metrics answers on the REST port
    assert [a["replacement"] for a in address] == (["${1}:8080"] if protocol == "grpc" else [])
    assert "ServiceMonitor" not in rendered
    assert (
        "serving.kserve.io/enable-prometheus-scraping"
        not in (rendered["InferenceService"]["metadata"]["annotations"])
    )


def test_service_monitor_scrapes_a_service_of_the_metrics_port(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["service-monitor-grpc"])
    service, monitor = rendered["Service"], rendered["ServiceMonitor"]["spec"]
    assert _selects(service["spec"]["selector"], predictor(rendered)["labels"])
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]
    assert _selects(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
    assert not _selects(monitor["selector"]["matchLabels"], predictor(rendered)["labels"])
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    assert "PodMonitor" not in rendered
    assert rendered["PrometheusRule"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_monitor_labels_let_a_prometheus_select_the_monitor(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["everything"])
    assert rendered["PodMonitor"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    notes = rendered["NOTES"]
    assert (
        "Prometheus Operator objects in churn: PodMonitor churn-predictor, PrometheusRule churn."
        in notes
    )


@pytest.mark.parametrize(
    ("windows", "minutes", "expected"), [(2, 60, "90m"), (3, 30, "75m"), (1, 10, "5m")]
)
def test_sustained_drift_waits_for_n_windows(
    chart: Any, windows: int, minutes: int, expected: str
) -> None:
    values = {
        "prometheusRule": {"enabled": True, "drift": {"windows": windows, "windowMinutes": minutes}}
    }
    groups = render(chart, values)["PrometheusRule"]["spec"]["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r["alert"] == "ChurnDriftSustained"]
    assert rule["for"] == expected
    assert rule["expr"] == 'churn_drift_window_drift{model="churn"} == 1'


def test_the_dashboard_configmap_carries_the_release_and_the_sidecar_label(chart: Any) -> None:
    rendered = render(chart, {"grafanaDashboard": {"enabled": True}}, namespace="churn-eu")
    configmap = rendered["ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    dashboard = json.loads(text)
    assert dashboard["uid"] == "churn-churn-eu-churn"
    defaults = {
        v["name"]: v.get("current", {}).get("value") for v in dashboard["templating"]["list"]
    }
    assert defaults == {
        "datasource": None,
        "namespace": "churn-eu",
        "isvc": "churn",
        "model": "churn",
    }
    assert "__" not in text.replace("__inputs", "").replace("$__", "")  # every placeholder filled


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
    "unknown-auth-key": ({"auth": {"issuer": "x"}}, "at '/auth': additional properties 'issuer'"),
    "tenant-not-a-guid": (
        {"auth": {"enabled": True, "tenantId": "contoso.onmicrosoft.com"}},
        "at '/auth/tenantId'",
    ),
    "root-user": ({"securityContext": {"runAsUser": 0}}, "at '/securityContext/runAsUser'"),
    "broker-not-a-name": ({"logger": {"broker": "My Broker"}}, "at '/logger/broker'"),
    "bad-duration": (
        {"prometheusRule": {"errorRate": {"for": "ten minutes"}}},
        "at '/prometheusRule/errorRate/for'",
    ),
    "share-above-one": (
        {"prometheusRule": {"errorRate": {"threshold": 5}}},
        "at '/prometheusRule/errorRate/threshold'",
    ),
    "bad-label-value": (
        {"grafanaDashboard": {"labels": {"grafana_dashboard": "yes please"}}},
        "at '/grafanaDashboard/labels/grafana_dashboard'",
    ),
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
    "auth-without-a-tenant": (
        {"auth": {"enabled": True, "audiences": [AUDIENCE]}},
        "auth.enabled needs auth.tenantId",
    ),
    "auth-without-an-audience": (
        {"auth": {"enabled": True, "tenantId": TENANT}},
        "auth.enabled needs auth.audiences: without an audience Istio accepts any token",
    ),
    "tenant-while-auth-is-off": (
        {"auth": {"tenantId": TENANT, "audiences": [AUDIENCE]}},
        "auth.tenantId or auth.audiences is set but auth.enabled is false",
    ),
    "logger-url-and-broker": (
        {"logger": {"url": "http://churn-drift.churn.svc.cluster.local/events"}},
        "logger.url (http://churn-drift.churn.svc.cluster.local/events) and logger.broker "
        "(default) are both set",
    ),
    "logger-without-a-target": (
        {"logger": {"broker": ""}},
        "logger.enabled with neither logger.broker nor logger.url",
    ),
    "logger-outside-the-namespace": (
        {"logger": {"broker": "", "url": "https://collector.example.com/events"}},
        "logger.url https://collector.example.com/events points outside namespace churn",
    ),
    "two-monitors": (
        {
            "metrics": {
                "prometheusScraping": False,
                "podMonitor": {"enabled": True},
                "serviceMonitor": {"enabled": True},
            }
        },
        "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled are both true",
    ),
    "annotations-and-a-monitor": (
        {"metrics": {"podMonitor": {"enabled": True}}},
        "metrics.prometheusScraping with metrics.podMonitor.enabled or "
        "metrics.serviceMonitor.enabled: the pods would be scraped twice",
    ),
    "monitor-without-the-logger": (
        {"logger": {"enabled": False}},
        "monitor.enabled with logger.enabled false: the drift service would receive no events",
    ),
    "postgresql-without-a-secret": (
        {"monitor": {"database": {"type": "postgresql"}}},
        "monitor.database.type postgresql needs monitor.database.postgresql.existingSecret",
    ),
    "postgresql-and-a-claim": (
        {
            "monitor": {
                "database": {
                    "type": "postgresql",
                    "postgresql": {"existingSecret": "db"},
                    "persistence": {"existingClaim": "old"},
                }
            }
        },
        "monitor.database.persistence.existingClaim (old) with monitor.database.type postgresql",
    ),
    "a-postgresql-secret-for-sqlite": (
        {"monitor": {"database": {"postgresql": {"existingSecret": "db"}}}},
        "monitor.database.postgresql.existingSecret (db) with monitor.database.type sqlite",
    ),
    "monitor-env-sets-the-database": (
        {"monitor": {"env": [{"name": "CHURN_MONITOR_DB_URL", "value": "sqlite:///x.db"}]}},
        "monitor.env sets CHURN_MONITOR_DB_URL, which the chart sets from monitor.database",
    ),
    "monitor-launches-kfp-without-an-endpoint": (
        {"monitor": {"launch": "kfp"}},
        "monitor.launch kfp needs CHURN_KFP_ENDPOINT in monitor.env",
    ),
    "monitor-registry-without-tracking": (
        {"monitor": {"modelUri": "models:/churn/3"}},
        "the drift service's bundle models:/churn/3 is a registry URI but mlflow.trackingUri is "
        "empty",
    ),
    "rollout-job-while-disabled": (
        {"rollout": {"enabled": False, "job": {"storageUri": BUNDLE_2}}},
        "rollout.job.storageUri with rollout.enabled false",
    ),
    "rollout-job-without-prometheus": (
        {"rollout": {"job": {"storageUri": BUNDLE_2}}},
        "rollout.job.storageUri needs rollout.prometheusUrl",
    ),
    "rollout-job-of-the-stable-bundle": (
        {
            "rollout": {
                "prometheusUrl": "http://prometheus:9090",
                "job": {
                    "storageUri": "https://churnartifacts.blob.core.windows.net/churn/bundles/churn/1"
                },
            }
        },
        "rollout.job.storageUri equals bundle.storageUri",
    ),
    "rollout-job-on-az": (
        {
            "rollout": {
                "prometheusUrl": "http://prometheus:9090",
                "job": {"storageUri": "az://c/b/2"},
            }
        },
        "rollout.job.storageUri az://c/b/2: KServe's storage initializer does not read az://",
    ),
    "rollout-job-and-a-chart-canary": (
        {
            "bundle": {"storageUri": BUNDLE_2},
            "canary": {"trafficPercent": 5},
            "rollout": {
                "prometheusUrl": "http://prometheus:9090",
                "job": {"storageUri": BUNDLE_2 + "-next"},
            },
        },
        "rollout.job.storageUri with canary.trafficPercent=5: the controller sets the canary's "
        "share itself",
    ),
    "rollout-job-with-a-registry-bundle": (
        {
            **REGISTRY,
            "rollout": {"prometheusUrl": "http://prometheus:9090", "job": {"storageUri": BUNDLE_2}},
        },
        "rollout.job.storageUri with bundle.registryUri",
    ),
    "rollout-subjects-without-the-role": (
        {"rollout": {"enabled": False, "extraSubjects": [{"kind": "User", "name": "x"}]}},
        "rollout.extraSubjects with rollout.enabled false",
    ),
    "network-policy-without-prometheus": (
        {"networkPolicy": {"prometheus": {"namespace": ""}}},
        "networkPolicy.enabled with networkPolicy.prometheus.namespace empty while metrics are "
        "scraped",
    ),
}


@pytest.mark.parametrize(("values", "message"), CONFLICTS.values(), ids=CONFLICTS.keys())
def test_conflicting_settings_fail_at_render_time(
    chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError) as caught:
        render(chart, values)
    assert message in str(caught.value)


def test_a_canary_on_a_first_install_fails_there_is_no_previous_model(chart: Any) -> None:
    with pytest.raises(helm.HelmRenderError) as caught:
        render(chart, VALUE_SETS["canary-25"], upgrade=False)
    assert (
        "canary.trafficPercent=25 on a first install: there is no previous model (no "
        "rolled-out revision) to share the traffic with"
    ) in str(caught.value)
    assert "canaryTrafficPercent" not in predictor(render(chart, upgrade=False))
    assert (
        predictor(render(chart, VALUE_SETS["canary-25"], upgrade=True))["canaryTrafficPercent"]
        == 25
    )


def test_each_conflict_is_documented_in_the_readme() -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Settings that conflict", 1)[1].split("\n## ", 1)[0]
    defaults = chart_defaults()
    leaves = [k for k, v in defaults.items() if not (isinstance(v, dict) and v)]
    conflicts = {
        **CONFLICTS,
        "canary-on-a-first-install": ({}, "canary.trafficPercent=5 on a first install"),
    }
    for name, (_, message) in conflicts.items():
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
    """Every dotted key of values.yaml with its default (a labels map is one value)."""
    flat: dict[str, Any] = _readme_tool().flatten(
        yaml.safe_load((CHART / "values.yaml").read_text()),
        schema=json.loads((CHART / "values.schema.json").read_text()),
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
