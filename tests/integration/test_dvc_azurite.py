"""DVC with the project's Azure Blob remote, against a real Azurite.

Each test works in a throwaway git+DVC repo in tmp_path that carries the project's
own `.dvc/config` (default remote `azure://churn-data/dvc`); dvc-azure reaches
Azurite through AZURE_STORAGE_CONNECTION_STRING, which is how CI and a developer
point the same config at another account without editing it.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
POINTER = ROOT / "data" / "raw" / "WA_Fn-UseC_-Telco-Customer-Churn.csv.dvc"
REMOTE_CONTAINER = "churn-data"


def _dvc(repo: Path, *args: str, env: dict[str, str], check: bool = True) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def _env(conn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update(
        AZURE_STORAGE_CONNECTION_STRING=conn,
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    return env


def _new_repo(path: Path, env: dict[str, str]) -> Path:
    """git init + dvc init, then the project's own DVC config (its remote)."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True, env=env)
    _dvc(path, "init", "-q", env=env)
    shutil.copy(ROOT / ".dvc" / "config", path / ".dvc" / "config")
    return path


@pytest.fixture
def remote(azurite) -> str:
    """The container behind the project's DVC remote, created in Azurite."""
    try:
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
            REMOTE_CONTAINER
        )
    except ResourceExistsError:
        pass
    return azurite.connection_string


def _tiny_csv(seed: int) -> bytes:
    rng = random.Random(seed)
    rows = ["customerID,tenure,MonthlyCharges,Churn"]
    rows += [
        f"{rng.randint(1000, 9999)}-SYN{i},{rng.randint(0, 72)},"
        f"{rng.uniform(18, 119):.2f},{rng.choice(['Yes', 'No'])}"
        for i in range(50)
    ]
    return ("\n".join(rows) + "\n").encode()


def test_project_dvc_config_has_an_azure_default_remote():
    env = dict(os.environ)
    remotes = _dvc(ROOT, "remote", "list", "--project", env=env).split()
    assert remotes[:2] == ["azure", "azure://churn-data/dvc"]
    assert _dvc(ROOT, "remote", "default", "--project", env=env).strip() == "azure"


def test_push_then_pull_from_azurite_gives_the_same_bytes(remote, tmp_path):
    env = _env(remote)
    repo = _new_repo(tmp_path / "repo", env)
    data = _tiny_csv(seed=1)
    csv = repo / "data" / "raw" / "telco-synthetic.csv"
    csv.parent.mkdir(parents=True)
    csv.write_bytes(data)
    _dvc(repo, "add", "-q", "data/raw/telco-synthetic.csv", env=env)
    pointer = yaml.safe_load((repo / "data/raw/telco-synthetic.csv.dvc").read_text())
    md5 = hashlib.md5(data).hexdigest()
    assert pointer["outs"][0]["md5"] == md5
    _dvc(repo, "push", env=env)
    # The object really is in the Azurite container, content-addressed by md5.
    container = BlobServiceClient.from_connection_string(remote).get_container_client(
        REMOTE_CONTAINER
    )
    blob = f"dvc/files/md5/{md5[:2]}/{md5[2:]}"
    assert container.get_blob_client(blob).download_blob().readall() == data

    csv.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    _dvc(repo, "pull", env=env)
    assert csv.read_bytes() == data


@pytest.mark.realdata
def test_project_pointer_matches_the_real_csv(real_csv, tmp_path):
    """`dvc add` of the real CSV reproduces the committed pointer exactly."""
    pointer = yaml.safe_load(POINTER.read_text())
    (out,) = pointer["outs"]
    data = real_csv.read_bytes()
    assert out["size"] == len(data) == 970457
    assert out["md5"] == hashlib.md5(data).hexdigest()
    env = _env("")
    repo = _new_repo(tmp_path / "repo", env)
    (repo / "data" / "raw").mkdir(parents=True)
    shutil.copy(real_csv, repo / "data" / "raw" / out["path"])
    _dvc(repo, "add", "-q", f"data/raw/{out['path']}", env=env)
    assert (repo / "data" / "raw" / POINTER.name).read_text() == POINTER.read_text()
