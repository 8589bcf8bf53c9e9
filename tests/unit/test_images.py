"""The four Dockerfiles build what the cluster runs safely, read without a Docker daemon.

Each Dockerfile is parsed into its stages and instructions (continuation lines
joined, comments dropped) and checked: every base image pinned by a sha256
digest, at least two stages with the runtime copying only the builder's
virtual environment (and the config file where the process reads it), a
numeric non-root USER, HOME and TMPDIR on /tmp (the chart's writable mount on
a read-only root), torch's CPU wheel pinned as the Makefile pins it, and
alibi-detect (BSL 1.1) installed only behind the licence build argument. The
build context filter (`<Dockerfile>.dockerignore`) lets in exactly what the
Dockerfile copies. No image is built here: `make images` and the images
workflow build them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "churn-components": "components/Dockerfile",
    "churn-serving": "inference/Dockerfile",
    "churn-monitor": "monitoring/Dockerfile",
    "churn-rollout": "rollout/Dockerfile",
}
# The one distribution: pyproject.toml maps these folders to the import packages.
PACKAGES = {"core", "model", "components", "pipelines", "inference", "monitoring", "rollout"}
PROJECT_FILES = {"pyproject.toml", "README.md", "requirements/constraints.txt"}
# Images whose process reads model_config.yaml at run time (CHURN_CONFIG_PATH).
READS_CONFIG = {"churn-serving", "churn-monitor"}
# Images that may carry the alibi-detect backend once a licence is configured.
ALIBI_IMAGES = {"churn-components", "churn-monitor"}
DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    """One FROM ... and the instructions under it."""

    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [rest for op, rest in self.instructions if op == instruction]


@dataclass
class Dockerfile:
    """A parsed Dockerfile: the global ARGs (before the first FROM) and the stages."""

    global_args: dict[str, str]
    stages: list[Stage]


def parse(text: str) -> Dockerfile:
    """Stages and instructions of a Dockerfile (backslash continuations joined).

    Raises:
        ValueError: an instruction before the first FROM other than ARG.
    """
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            words = rest.split()
            image = words[0]
            for name, value in global_args.items():
                image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(image, alias))
        elif not stages:
            if op != "ARG":
                raise ValueError(f"{op} before the first FROM")
            name, _, value = rest.partition("=")
            global_args[name] = value.strip('"')
        else:
            stages[-1].instructions.append((op, rest))
    return Dockerfile(global_args, stages)


def env_of(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for rest in stage.args("ENV"):
        for word in shlex.split(rest):
            key, _, value = word.partition("=")
            out[key] = value
    return out


def copies(stage: Stage) -> list[list[str]]:
    return [shlex.split(rest) for rest in stage.args("COPY")]


def problems(name: str, text: str, torch_pin: str) -> list[str]:
    """Everything wrong with one Dockerfile, as sentences (empty: it passes)."""
    found: list[str] = []
    doc = parse(text)
    if len(doc.stages) < 2:
        found.append(f"{len(doc.stages)} stage(s): a builder and a slim runtime expected")
    for stage in doc.stages:
        if not DIGEST.match(stage.image):
            found.append(f"base image {stage.image} is not pinned by a sha256 digest")
        elif not re.match(r"^python:3\.11(\.\d+)?-slim", stage.image):
            found.append(f"base image {stage.image} is not a python:3.11 slim image")
    if not doc.stages:
        return found
    runtime, builders = doc.stages[-1], doc.stages[:-1]
    users = runtime.args("USER")
    if not users:
        found.append("the runtime stage sets no USER: it would run as root")
    elif not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]):
        found.append(f"USER {users[-1]} is not a numeric non-root uid[:gid]")
    env = env_of(runtime)
    for key in ("HOME", "TMPDIR"):
        if not env.get(key, "").startswith("/tmp"):
            found.append(f"{key}={env.get(key)!r}: not on /tmp, the writable mount")
    for rest in runtime.args("RUN"):
        if re.search(r"\bpip\b", rest):
            found.append(f"the runtime stage runs pip ({rest[:60]}...): install in the builder")
    allowed_runtime = {"model_config.yaml"} if name in READS_CONFIG else set()
    for words in copies(runtime):
        flags = [w for w in words if w.startswith("--")]
        sources = [w for w in words if not w.startswith("--")][:-1]
        if any(f.startswith("--from=") for f in flags):
            if sources != ["/opt/venv"]:
                found.append(f"runtime copies {sources} from a stage: only /opt/venv expected")
        elif not set(sources) <= allowed_runtime:
            found.append(f"runtime copies {sources} from the context")
    if not any(w[0].startswith("--from=") for w in copies(runtime) if w):
        found.append("the runtime stage copies nothing from the builder")
    allowed = PROJECT_FILES | PACKAGES | ({"model_config.yaml"} if name in READS_CONFIG else set())
    for stage in builders:
        for words in copies(stage):
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                if source.rstrip("/") not in allowed:
                    found.append(f"builder copies {source}, which the image does not need")
    runs = [rest for stage in builders for rest in stage.args("RUN")]
    torch = [r for r in runs if "torch" in r]
    want = f"pip install --index-url https://download.pytorch.org/whl/cpu torch=={torch_pin}"
    if not any(want in r for r in torch):
        found.append(f"no `{want}` in the builder (the CPU wheel, pinned as the Makefile pins it)")
    for run in runs:
        if "alibi" not in run:
            continue
        if name not in ALIBI_IMAGES:
            found.append(f"{name} installs alibi-detect: it has no drift backend to run")
        elif not re.match(r'if \[ -n "\$ALIBI_DETECT_LICENSE" \]; then ', run):
            found.append(f"alibi-detect installed without the licence argument: {run[:80]}")
    for stage in builders:
        for rest in stage.args("ARG"):
            if rest.startswith("ALIBI_DETECT_LICENSE") and rest not in {
                "ALIBI_DETECT_LICENSE",
                'ALIBI_DETECT_LICENSE=""',
            }:
                found.append(f"ARG {rest}: the licence argument must default to empty")
    return found


def torch_pin() -> str:
    match = re.search(r"torch==([\w.+]+)", (ROOT / "Makefile").read_text())
    assert match, "the Makefile pins no torch version"
    return match.group(1)


def context_filter(dockerfile: str) -> set[str]:
    """The paths `<Dockerfile>.dockerignore` lets in (it must start by excluding everything)."""
    lines = [
        line.strip()
        for line in (ROOT / f"{dockerfile}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the filter must exclude everything first"
    return {line[1:].removesuffix("/**") for line in lines if line.startswith("!")}


@pytest.mark.parametrize(("name", "dockerfile"), DOCKERFILES.items())
def test_dockerfile_is_pinned_multi_stage_non_root_and_lean(name: str, dockerfile: str) -> None:
    assert problems(name, (ROOT / dockerfile).read_text(), torch_pin()) == []


@pytest.mark.parametrize(("name", "dockerfile"), DOCKERFILES.items())
def test_the_build_context_holds_exactly_what_the_image_copies(name: str, dockerfile: str) -> None:
    doc = parse((ROOT / dockerfile).read_text())
    copied = {
        source
        for stage in doc.stages
        for words in copies(stage)
        if not any(w.startswith("--from=") for w in words)
        for source in [w for w in words if not w.startswith("--")][:-1]
    }
    copied = {c.rstrip("/").removesuffix("/.") for c in copied} - {"."}
    # `COPY pyproject.toml README.md ./` style lines name files; folders are the packages
    assert context_filter(dockerfile) == copied


@pytest.mark.parametrize(("name", "dockerfile"), DOCKERFILES.items())
def test_the_builder_installs_every_package_of_the_distribution(name: str, dockerfile: str) -> None:
    # pyproject.toml lists every package, and `churn` builds its parser from all of them
    doc = parse((ROOT / dockerfile).read_text())
    copied = {words[0] for stage in doc.stages[:-1] for words in copies(stage)}
    assert PACKAGES <= copied


BROKEN = {
    "an unpinned base": ("FROM python:3.11-slim AS builder", "FROM python:3.11-slim AS builder"),
    "a root user": ("USER 1000:1000", "USER root"),
    "a named user": ("USER 1000:1000", "USER churn"),
    "one stage": (None, None),
    "alibi without the licence": (
        "RUN pip install -c requirements/constraints.txt . \\\n",
        'RUN pip install -c requirements/constraints.txt ".[alibi]" \\\n',
    ),
    "the CUDA torch": (
        "pip install --index-url https://download.pytorch.org/whl/cpu torch==",
        "pip install torch==",
    ),
    "home on the root filesystem": ("HOME=/tmp", "HOME=/home/churn"),
    "the whole context": ("COPY core core", "COPY . ."),
    "pip in the runtime": ("USER 1000:1000", "RUN pip install requests\nUSER 1000:1000"),
}


@pytest.mark.parametrize("case", BROKEN, ids=BROKEN)
def test_each_check_catches_a_broken_dockerfile(case: str) -> None:
    text = (ROOT / "monitoring" / "Dockerfile").read_text()
    old, new = BROKEN[case]
    if case == "an unpinned base":
        text = text.replace("FROM ${PYTHON_IMAGE} AS builder", new)
    elif case == "one stage":
        text = text[: text.index("FROM ${PYTHON_IMAGE} AS runtime")]
    else:
        assert old in text, old
        text = text.replace(old, new)
    assert problems("churn-monitor", text, torch_pin()) != []


def test_parse_joins_continuations_and_resolves_the_base_argument() -> None:
    doc = parse(
        "ARG BASE=python:3.11-slim@sha256:" + "a" * 64 + "\n"
        "FROM ${BASE} AS builder\n"
        "RUN echo a \\\n"
        "    # a comment inside\n"
        "    && echo b\n"
        "FROM $BASE\n"
        "USER 1000\n"
    )
    assert [s.image for s in doc.stages] == ["python:3.11-slim@sha256:" + "a" * 64] * 2
    assert doc.stages[0].args("RUN") == ["echo a && echo b"]
    assert doc.stages[1].args("USER") == ["1000"]


def test_the_makefile_and_the_images_workflow_build_all_four() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for name, dockerfile in DOCKERFILES.items():
        assert f"{dockerfile}={name}:" in makefile
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    matrix = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    assert {m["image"]: m["dockerfile"] for m in matrix} == DOCKERFILES


def test_make_images_without_docker_fails_with_a_clear_message(tmp_path: Path) -> None:
    # PATH without docker: make, sed and the shell only
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "sed", "bash", "sh"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    proc = subprocess.run(
        [str(bin_dir / "make"), "--no-print-directory", "images"],
        cwd=ROOT,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "make images: no docker command on PATH" in proc.stderr
