"""The one Kubernetes object the controller touches: a KServe InferenceService.

`ClusterApi` is all the controller needs: `get` and a JSON merge patch
(RFC 7386, `application/merge-patch+json`: the only patch a custom resource
takes besides JSON Patch; strategic merge does not apply to CRDs, so a list
such as `containers` is always sent whole). `KubernetesCluster` is the real
one (the Kubernetes Python client's CustomObjectsApi). `InMemoryCluster` is
NOT a cluster: it keeps InferenceService objects in a dict, applies patches
with the API server's merge semantics (status is a subresource, so a patch
of the object never changes it; `metadata.generation` moves only with the
spec), validates every result with a given function (the tests pass the
KServe CRD's strict schema check), and, standing in for KServe's controller,
rewrites the status as KServe's Knative-mode reconciler would
(`reconcile_kserve_status`). It lets the controller's exact patches be
replayed without an API server; what a live cluster adds (admission
webhooks, Knative's own revision naming and readiness, KServe's real
reconcile timing) is not exercised by it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from churn_core.errors import ChurnError, InvalidInput, NotFound

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"


class ClusterApi(Protocol):
    """Read and merge-patch InferenceServices."""

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        """The InferenceService as the API server holds it (spec, metadata, status)."""
        ...

    def patch(self, name: str, namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7386); the object after the patch."""
        ...


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class KubernetesCluster:
    """The real API server, through the Kubernetes Python client."""

    def __init__(self, api: Any | None = None, kubeconfig: str | None = None) -> None:
        """`api`: a `kubernetes.client.CustomObjectsApi`; None loads the pod's or kubeconfig's.

        `kubeconfig`: the file to read outside a pod (None: the client's default,
        `$KUBECONFIG` as it was when the client was imported, else ~/.kube/config).
        """
        self._api = api
        self._kubeconfig = kubeconfig

    @property
    def api(self) -> Any:
        """The CustomObjectsApi, configured on first use (in-cluster first, then kubeconfig)."""
        if self._api is None:
            from kubernetes import client, config

            try:
                if self._kubeconfig:
                    raise config.ConfigException("a kubeconfig was given")
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config(config_file=self._kubeconfig)
                except (config.ConfigException, OSError) as err:
                    raise ChurnError(
                        f"no Kubernetes configuration (not in a pod, no kubeconfig): {err}"
                    ) from err
            self._api = client.CustomObjectsApi()
        return self._api

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        """GET the InferenceService."""
        return self._call("get", name, namespace)

    def patch(self, name: str, namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
        """PATCH with `application/merge-patch+json` (the client's content type for CRDs)."""
        return self._call("patch", name, namespace, patch)

    def _call(
        self, verb: str, name: str, namespace: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            if verb == "get":
                out = self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            else:
                out = self.api.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, body
                )
        except urllib3.exceptions.HTTPError as err:
            raise ChurnError(f"the Kubernetes API server did not answer: {err}") from err
        except ApiException as err:
            where = f"InferenceService {namespace}/{name}"
            if err.status == 404:
                raise NotFound(f"{where} not found") from err
            if err.status == 422:
                raise InvalidInput(
                    f"{where}: the API server refused the patch: {err.body}"
                ) from err
            raise ChurnError(f"{where}: {verb} failed: {err.status} {err.reason}") from err
        result: dict[str, Any] = out
        return result


def _spec_hash(predictor: dict[str, Any], annotations: dict[str, Any] | None = None) -> str:
    """What makes a new Knative revision: the predictor without its traffic share.

    And the annotations KServe copies to the revision template, when it copies them.
    """
    template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
    template["<annotations>"] = annotations or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


def reconcile_kserve_status(
    obj: dict[str, Any], revisions: list[str], copied_annotations: frozenset[str] | None = None
) -> dict[str, Any]:
    """The status KServe's Knative-mode reconciler would write for `obj`.

    `revisions` holds the spec hash of each revision created so far (appended
    to when the predictor's template changed). Knative names revisions
    `<isvc>-predictor-00001`, ...; every revision is taken to be ready. With
    `canaryTrafficPercent` set and a rolled-out revision older than the
    latest, the latest gets the share (tag `latest`) and the rolled-out one
    the rest (tag `prev`); without it the latest takes 100% and becomes the
    rolled-out revision, the one before it the previous. KServe copies the
    InferenceService's annotations to the revision template, except those in
    its `serviceAnnotationDisallowedList`: `copied_annotations` names the keys
    that, when they change, make a new revision (None: none do, the deployed
    configuration the controller needs).
    """
    name = obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace", "default")
    predictor = obj["spec"]["predictor"]
    old = obj.get("status", {}).get("components", {}).get("predictor", {})
    annotations = obj["metadata"].get("annotations", {})
    copied = {k: v for k, v in annotations.items() if k in (copied_annotations or ())}
    digest = _spec_hash(predictor, copied)
    if not revisions or revisions[-1] != digest:
        revisions.append(digest)
    latest = f"{name}-predictor-{len(revisions):05d}"
    rolled_out = old.get("latestRolledoutRevision")
    previous = old.get("previousRolledoutRevision")
    canary = predictor.get("canaryTrafficPercent")
    tagged = obj["metadata"].get("annotations", {}).get("serving.kserve.io/enable-tag-routing")
    host = f"{name}-predictor.{namespace}.example.com"

    def entry(revision: str, percent: int, is_latest: bool, tag: str) -> dict[str, Any]:
        out: dict[str, Any] = {"revisionName": revision, "percent": percent}
        out["latestRevision"] = is_latest
        if tagged == "true":
            out["tag"], out["url"] = tag, f"http://{tag}-{host}"
        return out

    if canary is not None and rolled_out and rolled_out != latest:
        traffic = [entry(latest, int(canary), True, "latest")]
        traffic.append(entry(rolled_out, 100 - int(canary), False, "prev"))
    else:
        if rolled_out != latest:
            previous, rolled_out = rolled_out, latest
        traffic = [entry(latest, 100, True, "latest")]
    component: dict[str, Any] = {
        "latestCreatedRevision": latest,
        "latestReadyRevision": latest,
        "latestRolledoutRevision": rolled_out,
        "traffic": traffic,
        "url": f"http://{host}",
    }
    if previous:
        component["previousRolledoutRevision"] = previous
    return {
        "observedGeneration": obj["metadata"].get("generation", 1),
        "url": f"http://{name}.{namespace}.example.com",
        "components": {"predictor": component},
        "conditions": [{"type": "Ready", "status": "True"}],
    }


class InMemoryCluster:
    """InferenceServices in memory with the API server's patch semantics. Not a cluster.

    `validate(obj)` returns the problems the API server would refuse (the tests
    give the KServe CRD's strict check); a patch whose result has any is refused
    with InvalidInput and leaves the object unchanged. KServe's controller is
    played by `reconcile_kserve_status`: it runs on the `lag`-th read after a
    change of the spec (1: the first read after a patch still shows the old
    status, as a real reconcile takes time), or when `reconcile()` is called;
    `lag=None` leaves it to `reconcile()` alone. `patches` records every
    patch received, in order.
    """

    def __init__(
        self,
        objects: Iterable[dict[str, Any]] = (),
        validate: Callable[[dict[str, Any]], list[str]] | None = None,
        lag: int | None = 1,
        copied_annotations: frozenset[str] | None = None,
    ) -> None:
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._revisions: dict[tuple[str, str], list[str]] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self._validate = validate or (lambda obj: [])
        self._lag = lag
        self._copied = copied_annotations
        self._lock = threading.Lock()
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        for obj in objects:
            self.create(obj)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new InferenceService (a first install) and let KServe roll it out."""
        if obj.get("apiVersion") != API_VERSION or obj.get("kind") != "InferenceService":
            raise InvalidInput(f"not a {API_VERSION} InferenceService: {obj.get('kind')}")
        obj = copy.deepcopy(obj)
        obj.pop("status", None)
        meta = obj["metadata"]
        meta.setdefault("namespace", "default")
        meta.update(generation=1, resourceVersion="1")
        self._check(obj)
        key = (meta["namespace"], meta["name"])
        with self._lock:
            if key in self._objects:
                raise InvalidInput(f"InferenceService {key[0]}/{key[1]} already exists")
            self._objects[key] = obj
            self._revisions[key] = []
            self._reconcile(key)
            return copy.deepcopy(obj)

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        """The stored object; KServe's status follows the spec after `lag` reads."""
        key = (namespace, name)
        with self._lock:
            obj = self._find(key)
            if key in self._pending:
                self._pending[key] -= 1
                if self._pending[key] <= 0:
                    self._reconcile(key)
            return copy.deepcopy(obj)

    def patch(self, name: str, namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the object (status untouched), validate, bump generation on spec change."""
        key = (namespace, name)
        with self._lock:
            current = self._find(key)
            self.patches.append((namespace, name, copy.deepcopy(patch)))
            body = {k: v for k, v in patch.items() if k != "status"}  # status: a subresource
            updated = merge_patch(current, body)
            updated["status"] = copy.deepcopy(current.get("status"))
            if updated["status"] is None:
                updated.pop("status")
            for field in ("name", "namespace"):
                if updated["metadata"].get(field) != current["metadata"].get(field):
                    raise InvalidInput(f"metadata.{field} is immutable")
            meta = updated["metadata"]
            if updated.get("spec") != current.get("spec") or self._copied_changed(current, updated):
                meta["generation"] = int(current["metadata"]["generation"]) + 1
                if self._lag is not None:
                    self._pending[key] = self._lag
            meta["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            self._check(updated)
            self._objects[key] = updated
            return copy.deepcopy(updated)

    def _copied_changed(self, old: dict[str, Any], new: dict[str, Any]) -> bool:
        def pick(obj: dict[str, Any]) -> dict[str, Any]:
            found = obj["metadata"].get("annotations", {})
            return {k: v for k, v in found.items() if k in (self._copied or ())}

        return pick(old) != pick(new)

    def reconcile(self, name: str, namespace: str) -> dict[str, Any]:
        """Let KServe's controller catch up with the spec now."""
        key = (namespace, name)
        with self._lock:
            self._find(key)
            self._reconcile(key)
            return copy.deepcopy(self._objects[key])

    def _reconcile(self, key: tuple[str, str]) -> None:
        obj = self._objects[key]
        status = reconcile_kserve_status(obj, self._revisions[key], self._copied)
        candidate = {**obj, "status": status}
        self._check(candidate)
        self._objects[key] = candidate
        self._pending.pop(key, None)

    def _find(self, key: tuple[str, str]) -> dict[str, Any]:
        if key not in self._objects:
            raise NotFound(f"InferenceService {key[0]}/{key[1]} not found")
        return self._objects[key]

    def _check(self, obj: dict[str, Any]) -> None:
        problems = self._validate(obj)
        if problems:
            name = obj["metadata"].get("name")
            raise InvalidInput(f"InferenceService {name} refused: " + "; ".join(problems))
