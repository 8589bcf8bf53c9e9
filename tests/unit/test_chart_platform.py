"""The chart installs the platform around the model: drift service, Triggers, rollout controller.

Rendered by the Helm SDK as in test_helm_chart.py (whose value sets also put every
object here through the CRD, the explicit Trigger schema and kubernetes-validate).
These tests hold the wiring: the Broker's Triggers reach the drift service's
Service and only with the request and response event types of this
InferenceService; the drift service's database is a claim or a Secret, never
both; the rollout controller's Role lets it get, list, watch and patch
InferenceServices of its namespace and nothing else (an RBAC evaluator below
asks it); every pod runs unprivileged on a read-only root with workload
identity's label when it is on; the NetworkPolicies admit only Knative
Eventing and Prometheus to the drift service and nothing to the controller.
"""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import pytest

from tests.k8s_schema import custom_resource_errors
from tests.unit.test_helm_chart import (
    BUNDLE_2,
    CHART,
    CLIENT_ID,
    NAMESPACE,
    VALUE_SETS,
    predictor,
    render,
)

MON = "churn-monitor"
RO = "churn-rollout"
PROMETHEUS = "http://prometheus-operated.monitoring.svc.cluster.local:9090"
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def triggers(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for k, d in rendered.items() if k != "NOTES" and d["kind"] == "Trigger"]


def pod_templates(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every pod the release creates: (labels, spec) of the predictor, Deployments and Jobs."""
    pods: dict[str, dict[str, Any]] = {}
    for key, doc in rendered.items():
        if key == "NOTES":
            continue
        if doc["kind"] in {"Deployment", "Job"}:
            pods[key] = doc["spec"]["template"]
        elif doc["kind"] == "InferenceService":
            spec = predictor(rendered)
            pods[key] = {"metadata": {"labels": spec["labels"]}, "spec": spec}
    return pods


def monitor_container(rendered: dict[str, Any]) -> dict[str, Any]:
    (only,) = rendered[f"Deployment/{MON}"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def monitor_env(rendered: dict[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in monitor_container(rendered)["env"]
    }


# -- the Broker's Triggers and the drift service's address


def test_two_triggers_deliver_this_models_requests_and_responses_to_the_drift_service(
    chart: Any,
) -> None:
    rendered = render(chart)
    found = {t["metadata"]["name"]: t["spec"] for t in triggers(rendered)}
    assert set(found) == {f"{MON}-request", f"{MON}-response"}
    assert {s["filter"]["attributes"]["type"] for s in found.values()} == {REQUEST, RESPONSE}
    service = rendered[f"Service/{MON}"]
    pod = rendered[f"Deployment/{MON}"]["spec"]["template"]
    for spec in found.values():
        # exact attributes: the type, and this InferenceService (KServe's logger sets both)
        assert (
            spec["filter"]["attributes"]["inferenceservicename"]
            == (rendered["InferenceService"]["metadata"]["name"])
        )
        assert spec["broker"] == "default"
        # the subscriber is the drift service's Service in this namespace (no namespace: same)
        assert spec["subscriber"]["ref"] == {"apiVersion": "v1", "kind": "Service", "name": MON}
        assert spec["subscriber"]["uri"] == "/"  # POST / takes the binary-mode CloudEvents
        assert spec["delivery"]["retry"] == 3
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    (container_port,) = monitor_container(rendered)["ports"]
    assert port["targetPort"] == container_port["name"] == "http"
    assert container_port["containerPort"] == 8090
    # and the model's logger posts to that very Broker
    assert predictor(rendered)["logger"] == {
        "mode": "all",
        "url": f"http://broker-ingress.knative-eventing.svc.cluster.local/{NAMESPACE}/default",
    }


def test_triggers_follow_the_broker_and_vanish_without_one(chart: Any) -> None:
    renamed = render(chart, {"logger": {"broker": "payloads"}})
    assert {t["spec"]["broker"] for t in triggers(renamed)} == {"payloads"}
    direct = render(chart, VALUE_SETS["logger-to-a-service"])
    assert triggers(direct) == []  # the logger posts to the URL itself
    assert f"Deployment/{MON}" in direct
    off = render(chart, VALUE_SETS["no-monitor-no-rollout"])
    assert triggers(off) == [] and f"Deployment/{MON}" not in off


def test_the_trigger_schema_catches_what_knative_would_refuse(chart: Any) -> None:
    (good, _) = triggers(render(chart))
    assert custom_resource_errors(good) == []
    cases = {
        "attribute name": lambda s: s["filter"]["attributes"].update({"ce-type": REQUEST}),
        "no subscriber": lambda s: s.pop("subscriber"),
        "absolute uri with a ref": lambda s: s["subscriber"].update(uri="http://x.example/"),
        "unknown field": lambda s: s.update(filters=None, brokr="default"),
        "non-string value": lambda s: s["filter"]["attributes"].update(type=1),
        "back-off not ISO 8601": lambda s: s["delivery"].update(backoffDelay="500ms"),
        "back-off policy": lambda s: s["delivery"].update(backoffPolicy="random"),
    }
    for name, breaks in cases.items():
        bad = copy.deepcopy(good)
        breaks(bad["spec"])
        assert custom_resource_errors(bad) != [], name


# -- the drift service and its database


def test_the_drift_service_runs_monitor_serve_with_its_probes(chart: Any) -> None:
    rendered = render(chart)
    deployment = rendered[f"Deployment/{MON}"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    c = monitor_container(rendered)
    assert c["command"] == ["churn"]
    assert c["args"] == [
        "monitor",
        "serve",
        "--model-uri",
        "https://churnartifacts.blob.core.windows.net/churn/bundles/churn/1",
        "--port",
        "8090",
        "--launch",
        "none",  # a trigger is recorded; training never runs in this pod
    ]
    assert monitor_env(rendered)["CHURN_HOST"] == "0.0.0.0"  # reachable through its Service
    assert c["image"] == "ghcr.io/churn-platform/churn-monitor:0.1.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert monitor_env(rendered)["CHURN_MONITOR_PORT"] == "8090"


def test_sqlite_lives_on_a_claim_the_chart_creates(chart: Any) -> None:
    rendered = render(chart)
    claim = rendered[f"PersistentVolumeClaim/{MON}-data"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default
    assert monitor_env(rendered)["CHURN_MONITOR_DB_URL"] == "sqlite:////data/monitor.db"
    volumes = {
        v["name"]: v for v in rendered[f"Deployment/{MON}"]["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": f"{MON}-data"}
    assert {"name": "data", "mountPath": "/data"} in monitor_container(rendered)["volumeMounts"]


def test_an_existing_claim_is_used_not_created(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["monitor-on-an-existing-claim"])
    assert not [k for k in rendered if k.startswith("PersistentVolumeClaim/")]
    spec = rendered[f"Deployment/{MON}"]["spec"]["template"]["spec"]
    (data,) = [v for v in spec["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"] == {"claimName": "churn-monitor-old"}
    assert monitor_container(rendered)["args"][3] == "models:/churn/3"  # monitor.modelUri


def test_postgresql_comes_from_a_secret_and_needs_no_claim(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["monitor-on-postgresql"])
    env = monitor_env(rendered)
    assert env["CHURN_MONITOR_DB_URL"] == {
        "secretKeyRef": {"name": "churn-monitor-db", "key": "url"}
    }
    assert env["CHURN_MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert env["CHURN_KFP_ENDPOINT"] == "https://kfp.example.internal"
    args = monitor_container(rendered)["args"]
    assert args[args.index("--launch") + 1] == "kfp"
    assert env["CHURN_GITHUB_TOKEN"] == {"secretKeyRef": {"name": "churn-trigger", "key": "token"}}
    assert not [k for k in rendered if k.startswith("PersistentVolumeClaim/")]
    assert [m["mountPath"] for m in monitor_container(rendered)["volumeMounts"]] == ["/tmp"]


# -- the rollout controller's identity: InferenceServices of its namespace, nothing else


def allows(rendered: dict[str, Any], subject: str, verb: str, group: str, resource: str) -> bool:
    """Whether the release's RBAC lets `subject` do `verb` on `group/resource` (RBAC's rule)."""
    roles = {
        d["metadata"]["name"]: d
        for k, d in rendered.items()
        if k != "NOTES" and d["kind"] == "Role"
    }
    for key, binding in rendered.items():
        if key == "NOTES" or binding["kind"] != "RoleBinding":
            continue
        if subject not in {s["name"] for s in binding["subjects"]}:
            continue
        for rule in roles[binding["roleRef"]["name"]]["rules"]:
            if (
                (group in rule["apiGroups"] or "*" in rule["apiGroups"])
                and (resource in rule["resources"] or "*" in rule["resources"])
                and (verb in rule["verbs"] or "*" in rule["verbs"])
            ):
                return True
    return False


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_nothing_in_the_release_reaches_beyond_its_namespace(
    chart: Any, values: dict[str, Any]
) -> None:
    rendered = render(chart, values)
    for key, doc in rendered.items():
        if key == "NOTES":
            continue
        assert doc["kind"] not in {"ClusterRole", "ClusterRoleBinding"}, key
        assert doc["metadata"]["namespace"] == NAMESPACE, key
    for trigger in triggers(rendered):
        assert "namespace" not in trigger["spec"]["subscriber"]["ref"]  # the Trigger's own


def test_the_controller_may_get_list_watch_and_patch_inference_services_only(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["rollout-job"])
    (rule,) = rendered[f"Role/{RO}"]["rules"]
    assert rule == {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "list", "watch", "patch"],
    }
    for verb in ("get", "list", "watch", "patch"):
        assert allows(rendered, RO, verb, "serving.kserve.io", "inferenceservices")
    for verb, group, resource in [
        ("delete", "serving.kserve.io", "inferenceservices"),
        ("update", "serving.kserve.io", "inferenceservices"),
        ("create", "serving.kserve.io", "inferenceservices"),
        ("get", "", "secrets"),
        ("list", "", "pods"),
        ("patch", "serving.knative.dev", "services"),
        ("get", "serving.kserve.io", "servingruntimes"),
    ]:
        assert not allows(rendered, RO, verb, group, resource), (verb, group, resource)
    # the serving and drift pods' own account gets nothing
    assert not allows(rendered, "churn", "get", "serving.kserve.io", "inferenceservices")
    binding = rendered[f"RoleBinding/{RO}"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": RO,
    }
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": RO, "namespace": NAMESPACE}
    # the promote workflow's Entra identity, bound to the same Role and no other
    assert binding["subjects"][1]["kind"] == "User"
    assert allows(
        rendered, binding["subjects"][1]["name"], "patch", "serving.kserve.io", "inferenceservices"
    )


def test_the_rollout_job_runs_the_controller_once_per_bundle(chart: Any) -> None:
    rendered = render(chart, VALUE_SETS["rollout-job"])
    (key,) = [k for k in rendered if k.startswith("Job/")]
    job = rendered[key]
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == RO
    (c,) = pod["containers"]
    assert c["command"] == ["churn"]
    assert c["args"] == [
        "rollout",
        "run",
        "--name",
        "churn",
        "--namespace",
        NAMESPACE,
        "--storage-uri",
        BUNDLE_2,
        "--prometheus-url",
        PROMETHEUS,
        "--dry-run",
    ]
    other = render(
        chart,
        {"rollout": {"prometheusUrl": PROMETHEUS, "job": {"storageUri": BUNDLE_2 + "0"}}},
    )
    (other_key,) = [k for k in other if k.startswith("Job/")]
    assert {e["name"]: e["value"] for e in c["env"]}["CHURN_MODEL_NAME"] == "churn"
    assert other_key != key  # a new bundle is a new Job (a Job's pod spec is immutable)
    assert "--dry-run" not in other[other_key]["spec"]["template"]["spec"]["containers"][0]["args"]
    longest = render(chart, {**VALUE_SETS["rollout-job"], "fullnameOverride": "c" * 45})
    (long_key,) = [k for k in longest if k.startswith("Job/")]
    assert len(long_key.split("/", 1)[1]) <= 63  # its pods' job-name label
    assert not [k for k in render(chart) if k.startswith("Job/")]  # no bundle: no Job


# -- hardening and identity on every pod


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_pod_is_unprivileged_on_a_read_only_root(chart: Any, values: dict[str, Any]) -> None:
    rendered = render(chart, values)
    for key, pod in pod_templates(rendered).items():
        spec = pod["spec"]
        for c in spec["containers"]:
            security = c["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, key
            assert security["readOnlyRootFilesystem"] is True, key
            assert security["allowPrivilegeEscalation"] is False, key
            assert security["capabilities"] == {"drop": ["ALL"]}, key
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, key
            # HOME and TMPDIR of the images are /tmp: a writable emptyDir
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], key
        tmp = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert tmp and "emptyDir" in tmp[0], key
        if key != "InferenceService":
            assert spec["securityContext"]["runAsNonRoot"] is True, key


@pytest.mark.parametrize("enabled", [True, False])
def test_workload_identity_labels_every_pod_and_annotates_both_accounts(
    chart: Any, enabled: bool
) -> None:
    values = (
        VALUE_SETS["rollout-job"]
        if enabled
        else {**VALUE_SETS["rollout-job"], "serviceAccount": {}}
    )
    rendered = render(chart, values)
    pods = pod_templates(rendered)
    assert set(pods) == {
        "InferenceService",
        f"Deployment/{MON}",
        next(k for k in pods if k.startswith("Job/")),
    }
    for key, pod in pods.items():
        labels = pod["metadata"]["labels"]
        assert (labels.get("azure.workload.identity/use") == "true") is enabled, key
    for account in (rendered["ServiceAccount"], rendered[f"ServiceAccount/{RO}"]):
        annotations = account["metadata"].get("annotations", {})
        assert (annotations.get("azure.workload.identity/client-id") == CLIENT_ID) is enabled
    monitor_pod = pods[f"Deployment/{MON}"]["spec"]
    assert monitor_pod["serviceAccountName"] == rendered["ServiceAccount"]["metadata"]["name"]
    assert monitor_pod["automountServiceAccountToken"] is False  # it never calls the API


# -- who may reach the drift service and the controller


def test_only_knative_eventing_and_prometheus_reach_the_drift_service(chart: Any) -> None:
    rendered = render(chart)
    policy = rendered[f"NetworkPolicy/{MON}"]["spec"]
    pod_labels = rendered[f"Deployment/{MON}"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert not policy["podSelector"]["matchLabels"].items() <= predictor(rendered)["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    eventing, prometheus = policy["ingress"]
    assert eventing["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "knative-eventing"}}}
    ]
    assert eventing["ports"] == prometheus["ports"] == [{"port": 8090, "protocol": "TCP"}]
    assert prometheus["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    controller = rendered[f"NetworkPolicy/{RO}"]["spec"]
    assert controller["policyTypes"] == ["Ingress"] and "ingress" not in controller
    unscraped = render(chart, VALUE_SETS["scale-to-zero-no-logger"])
    assert f"NetworkPolicy/{MON}" not in unscraped  # no drift service there
    assert "NetworkPolicy/" + MON not in render(chart, VALUE_SETS["no-network-policy"])


@pytest.mark.parametrize("monitor", ["podMonitor", "serviceMonitor"])
def test_prometheus_operator_scrapes_the_drift_service(chart: Any, monitor: str) -> None:
    rendered = render(chart, {"metrics": {"prometheusScraping": False, monitor: {"enabled": True}}})
    kind = monitor[0].upper() + monitor[1:]
    spec = rendered[f"{kind}/{MON}"]["spec"]
    endpoints = spec["podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"]
    assert [(e["port"], e["path"]) for e in endpoints] == [("http", "/metrics")]
    target = (
        rendered[f"Deployment/{MON}"]["spec"]["template"]["metadata"]["labels"]
        if kind == "PodMonitor"
        else rendered[f"Service/{MON}"]["metadata"]["labels"]
    )
    assert spec["selector"]["matchLabels"].items() <= target.items()
    annotations = rendered[f"Deployment/{MON}"]["spec"]["template"]["metadata"].get("annotations")
    assert annotations is None  # one scrape, not two
    scraped = render(chart)[f"Deployment/{MON}"]["spec"]["template"]["metadata"]["annotations"]
    assert scraped == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8090",
        "prometheus.io/path": "/metrics",
    }


def test_notes_tell_how_to_reach_the_drift_service_and_follow_a_rollout(chart: Any) -> None:
    notes = render(chart, VALUE_SETS["rollout-job"])["NOTES"]
    assert f"Triggers {MON}-request and\n{MON}-response deliver its events" in notes
    assert f"kubectl -n {NAMESPACE} port-forward service/{MON} 8090:80" in notes
    assert "SQLite on the claim churn-monitor-data" in notes
    assert f"may get, list, watch and patch InferenceServices in\n{NAMESPACE} only" in notes
    assert "kubectl -n churn logs -f job/churn-rollout-" in notes
    assert f"set bundle.storageUri={BUNDLE_2}" in notes
    postgres = render(chart, VALUE_SETS["monitor-on-postgresql"])["NOTES"]
    assert "PostgreSQL (the URL in Secret churn-monitor-db, key url)" in postgres
    assert "Drift service" not in render(chart, VALUE_SETS["no-monitor-no-rollout"])["NOTES"]
