"""`churn rollout` through the real Kubernetes Python client, over HTTP.

No API server runs here. A small local HTTP endpoint answers the two calls
the controller makes (GET and PATCH of one InferenceService at the API
server's path) from `InMemoryCluster`, refusing any PATCH whose content type
is not `application/merge-patch+json`; the CLI finds it through a kubeconfig,
so the client, its URL paths, content type and error mapping are the real ones.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn_core.cli import main
from churn_core.errors import InvalidInput, NotFound
from churn_rollout.kube import InMemoryCluster
from tests.k8s_schema import custom_resource_errors
from tests.unit.test_rollout_controller import NAME, NEW_URI, NS, STABLE, rendered_isvc

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"


class ApiEndpoint:
    """GET/PATCH of InferenceServices over HTTP, answered by an InMemoryCluster."""

    def __init__(self, cluster: InMemoryCluster) -> None:
        self.cluster = cluster
        self.requests: list[tuple[str, str, str]] = []  # method, path, content type
        self.kubeconfig = ""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, method: str) -> None:
                ctype = self.headers.get("Content-Type", "")
                endpoint.requests.append((method, self.path, ctype))
                if not self.path.startswith(PREFIX):
                    return self._answer(404, {"kind": "Status", "code": 404})
                namespace, plural, name = self.path[len(PREFIX) :].split("/")
                if plural != "inferenceservices":
                    return self._answer(404, {"kind": "Status", "code": 404})
                try:
                    if method == "GET":
                        return self._answer(200, endpoint.cluster.get(name, namespace))
                    if ctype != "application/merge-patch+json":
                        return self._answer(415, {"kind": "Status", "message": ctype})
                    length = int(self.headers["Content-Length"])
                    patch = json.loads(self.rfile.read(length))
                    return self._answer(200, endpoint.cluster.patch(name, namespace, patch))
                except NotFound as err:
                    return self._answer(404, {"kind": "Status", "message": str(err)})
                except InvalidInput as err:
                    return self._answer(422, {"kind": "Status", "message": str(err)})

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    cluster = InMemoryCluster([rendered_isvc()], validate=custom_resource_errors)
    endpoint = ApiEndpoint(cluster)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": endpoint.url}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "u"}}],
        "current-context": "local",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    endpoint.kubeconfig = str(path)
    monkeypatch.setenv("CHURN_CONFIG_PATH", str(Path(__file__).parents[2] / "model_config.yaml"))
    yield endpoint
    endpoint.stop()


def rollout(api: ApiEndpoint, *args: str, name: str = NAME) -> int:
    return main(
        ["rollout", *args, "--name", name, "--namespace", NS, "--kubeconfig", api.kubeconfig]
    )


def test_status_prints_kserve_s_view(api, capsys) -> None:
    assert rollout(api, "status") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["traffic"] == {STABLE: 100}
    assert shown["latestRolledoutRevision"] == STABLE and shown["state"] is None


def test_start_sends_one_merge_patch(api) -> None:
    assert rollout(api, "start", "--storage-uri", NEW_URI, "--expect-revision", STABLE) == 0
    patches = [r for r in api.requests if r[0] == "PATCH"]
    assert len(patches) == 1
    method, path, ctype = patches[0]
    assert path == f"{PREFIX}{NS}/inferenceservices/{NAME}"
    assert ctype == "application/merge-patch+json"
    assert api.cluster.get(NAME, NS)["spec"]["predictor"]["canaryTrafficPercent"] == 5


def test_dry_run_prints_and_sends_nothing(api, capsys) -> None:
    assert rollout(api, "run", "--storage-uri", NEW_URI, "--dry-run") == 0
    assert [r for r in api.requests if r[0] == "PATCH"] == []
    out = capsys.readouterr().out
    assert out.count('"merge-patch+json"') == 4 and NEW_URI in out


def test_refusals_and_errors_exit_2(api) -> None:
    assert (
        rollout(api, "start", "--storage-uri", NEW_URI, "--expect-revision", "churn-x-00009") == 2
    )
    assert rollout(api, "start") == 2  # no --storage-uri
    assert rollout(api, "step") == 2  # no --prometheus-url
    assert rollout(api, "status", name="nope") == 2  # 404
    assert [r for r in api.requests if r[0] == "PATCH"] == []


def test_an_unreachable_api_server_exits_2(api, tmp_path) -> None:
    from tests.fixtures.ports import free_port

    config = yaml.safe_load(Path(api.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "closed"
    path.write_text(yaml.safe_dump(config))
    args = ["rollout", "status", "--name", NAME, "--namespace", NS, "--kubeconfig", str(path)]
    assert main(args) == 2
