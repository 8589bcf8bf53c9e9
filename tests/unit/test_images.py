"""The four images build what the cluster runs safely, read without a Docker daemon.

The one Dockerfile at the repository root has one build target per image. It
is parsed into its stages and instructions (continuation lines joined,
comments dropped), and each target is resolved through its stage chain: the
target inherits every instruction of its `FROM <stage>` parents, and the
stages it copies from (`COPY --from=<stage>`, with their own parents) are its
builders. Per image it is checked: every base image pinned by a sha256
digest, a runtime that is not the builder and copies only the builder's
virtual environment (and the config file where the process reads it, named by
CHURN_CONFIG_PATH), a numeric non-root USER, HOME and TMPDIR on /tmp (the
chart's writable mount on a read-only root), torch's CPU wheel pinned as the
Makefile pins it, and alibi-detect (BSL 1.1) installed only behind the licence
build argument and only in the images allowed to carry it. The build context
filter (`Dockerfile.dockerignore`) lets in exactly what the Dockerfile copies,
and the Makefile and the images workflow build each target under its tag (the
components tag equal to COMPONENTS_IMAGE). No image is built here:
`make images` and the images workflow build them.
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
DOCKERFILE = "Dockerfile"
# image name -> build target of the Dockerfile
TARGETS = {
    "churn-components": "components",
    "churn-serving": "serving",
    "churn-monitor": "monitor",
    "churn-rollout": "rollout",
}
# The one distribution: pyproject.toml maps these folders to the import packages.
PACKAGES = {"core", "model", "components", "pipelines", "inference", "monitoring", "rollout"}
PROJECT_FILES = {"pyproject.toml", "README.md", "requirements/constraints.txt"}
# Images whose process reads model_config.yaml at run time (CHURN_CONFIG_PATH).
READS_CONFIG = {"churn-serving", "churn-monitor"}
# Images that may carry the alibi-detect backend once a licence is configured.
ALIBI_IMAGES = {"churn-components", "churn-monitor"}
# What each image runs (ENTRYPOINT, CMD) and exposes; KFP sets the components' command.
COMMANDS = {
    "churn-components": (None, None),
    "churn-serving": (["churn"], ["serve", "--bundle", "/mnt/models"]),
    "churn-monitor": (["churn"], ["monitor", "serve"]),
    "churn-rollout": (["churn"], ["rollout", "--help"]),
}
PORTS = {"churn-components": set(), "churn-serving": {"8080", "8081"}}
PORTS |= {"churn-monitor": {"8090"}, "churn-rollout": set()}
DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}$")
LICENCE_GUARD = re.compile(r'if \[ -n "\$ALIBI_DETECT_LICENSE" \]; then ')


@dataclass
class Stage:
    """One FROM ... and the instructions under it.

    `image` is the resolved base: an image reference, or the name of an earlier
    stage (then `parent` is that name).
    """

    image: str
    name: str
    parent: str | None = None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [rest for op, rest in self.instructions if op == instruction]


@dataclass
class Dockerfile:
    """A parsed Dockerfile: the global ARGs (before the first FROM) and the stages."""

    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name and s.name == name), None)

    def chain(self, name: str) -> list[Stage]:
        """The stage `name` and its FROM parents, the external base's stage first."""
        out: list[Stage] = []
        stage = self.stage(name)
        while stage is not None:
            out.insert(0, stage)
            stage = self.stage(stage.parent) if stage.parent else None
        return out

    def builders(self, name: str) -> list[Stage]:
        """The stages the target copies from (`COPY --from`), with their parents, in file order."""
        seen: set[str] = set()
        pending = list(self.chain(name))
        reached: set[str] = set()
        while pending:
            stage = pending.pop()
            for words in copies(stage):
                source = copy_from(words)
                if source and source not in seen and self.stage(source):
                    seen.add(source)
                    for parent in self.chain(source):
                        reached.add(parent.name)
                        pending.append(parent)
        return [s for s in self.stages if s.name in reached]


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
            words = [w for w in rest.split() if not w.startswith("--")]
            image = words[0]
            for name, value in global_args.items():
                image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            parent = image if any(s.name == image for s in stages) else None
            stages.append(Stage(image, alias, parent))
        elif not stages:
            if op != "ARG":
                raise ValueError(f"{op} before the first FROM")
            name, _, value = rest.partition("=")
            global_args[name] = value.strip('"')
        else:
            stages[-1].instructions.append((op, rest))
    return Dockerfile(global_args, stages)


def env_of(stages: list[Stage]) -> dict[str, str]:
    """The environment at the end of a stage chain (a later ENV overrides an earlier one)."""
    out: dict[str, str] = {}
    for stage in stages:
        for rest in stage.args("ENV"):
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                out[key] = value
    return out


def last(stages: list[Stage], instruction: str) -> str | None:
    """The last value of an instruction along a stage chain (USER, CMD, ENTRYPOINT)."""
    values = [rest for stage in stages for rest in stage.args(instruction)]
    return values[-1] if values else None


def copies(stage: Stage) -> list[list[str]]:
    return [shlex.split(rest) for rest in stage.args("COPY")]


def copy_from(words: list[str]) -> str | None:
    """The stage (or image) of `COPY --from=...`; None for a copy from the build context."""
    return next((w.removeprefix("--from=") for w in words if w.startswith("--from=")), None)


def sources(words: list[str]) -> list[str]:
    return [w for w in words if not w.startswith("--")][:-1]


def problems(name: str, text: str, torch_pin: str) -> list[str]:
    """Everything wrong with one image's target of the Dockerfile, as sentences (empty: passes)."""
    found: list[str] = []
    doc = parse(text)
    target = TARGETS[name]
    runtime = doc.chain(target)
    if not runtime:
        return [f"no stage named {target}: the {name} image has no build target"]
    builders = doc.builders(target)
    names = {s.name for s in runtime}
    for stage in runtime + builders:
        if stage.parent:
            continue
        if not DIGEST.match(stage.image):
            found.append(f"base image {stage.image} is not pinned by a sha256 digest")
        elif not re.match(r"^python:3\.11(\.\d+)?-slim", stage.image):
            found.append(f"base image {stage.image} is not a python:3.11 slim image")
    if not builders:
        found.append(f"{target} copies nothing from a builder stage: a slim runtime expected")
    for stage in builders:
        if stage.name in names:
            found.append(f"{target} is built FROM the builder {stage.name}: not a slim runtime")
    users = [u for s in runtime for u in s.args("USER")]
    if not users:
        found.append(f"{target} sets no USER: it would run as root")
    elif not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]):
        found.append(f"USER {users[-1]} is not a numeric non-root uid[:gid]")
    env = env_of(runtime)
    for key in ("HOME", "TMPDIR"):
        if not env.get(key, "").startswith("/tmp"):
            found.append(f"{key}={env.get(key)!r}: not on /tmp, the writable mount")
    for stage in runtime:
        if stage.name in {s.name for s in builders}:
            continue  # reported above: the runtime is the builder
        for rest in stage.args("RUN"):
            if re.search(r"\bpip\b", rest):
                found.append(f"the runtime runs pip ({rest[:60]}...): install in the builder")
    allowed_runtime = {"model_config.yaml"} if name in READS_CONFIG else set()
    config_at: set[str] = set()
    for stage in runtime:
        for words in copies(stage):
            source = copy_from(words)
            if source is not None:
                if doc.stage(source) is None:
                    found.append(f"{target} copies from {source}, which is no stage of the file")
                elif sources(words) != ["/opt/venv"]:
                    found.append(f"runtime copies {sources(words)} from a stage: only /opt/venv")
            elif not set(sources(words)) <= allowed_runtime:
                found.append(f"runtime copies {sources(words)} from the context")
            elif sources(words) == ["model_config.yaml"]:
                config_at.add([w for w in words if not w.startswith("--")][-1])
    if name in READS_CONFIG and env.get("CHURN_CONFIG_PATH") not in config_at:
        found.append(
            f"CHURN_CONFIG_PATH={env.get('CHURN_CONFIG_PATH')!r} is not where the image "
            f"copies model_config.yaml ({sorted(config_at)})"
        )
    allowed = PROJECT_FILES | PACKAGES
    for stage in builders:
        for words in copies(stage):
            for source in sources(words):
                if copy_from(words) is None and source.rstrip("/") not in allowed:
                    found.append(f"builder copies {source}, which the image does not need")
    runs = [rest for stage in builders for rest in stage.args("RUN")]
    want = f"pip install --index-url https://download.pytorch.org/whl/cpu torch=={torch_pin}"
    if not any(want in r for r in runs if "torch" in r):
        found.append(f"no `{want}` in the builder (the CPU wheel, pinned as the Makefile pins it)")
    for stage in builders:
        declared = [rest for rest in stage.args("ARG") if rest.startswith("ALIBI_DETECT_LICENSE")]
        for rest in declared:
            if rest not in {"ALIBI_DETECT_LICENSE", 'ALIBI_DETECT_LICENSE=""'}:
                found.append(f"ARG {rest}: the licence argument must default to empty")
        for run in stage.args("RUN"):
            if "alibi" not in run:
                continue
            if name not in ALIBI_IMAGES:
                found.append(f"{name} installs alibi-detect: it has no drift backend to run")
            elif not LICENCE_GUARD.match(run):
                found.append(f"alibi-detect installed without the licence argument: {run[:80]}")
            elif not declared:
                found.append(f"stage {stage.name} reads ALIBI_DETECT_LICENSE without its ARG")
    return found


def torch_pin() -> str:
    match = re.search(r"torch==([\w.+]+)", (ROOT / "Makefile").read_text())
    assert match, "the Makefile pins no torch version"
    return match.group(1)


def components_image() -> str:
    """COMPONENTS_IMAGE, read from the one place that names it."""
    text = (ROOT / "components" / "common.py").read_text()
    match = re.search(r'^COMPONENTS_IMAGE = "([^"]+)"$', text, re.MULTILINE)
    assert match, "components/common.py names no COMPONENTS_IMAGE"
    return match.group(1)


def version() -> str:
    match = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


def context_filter() -> set[str]:
    """The paths `Dockerfile.dockerignore` lets in (it must start by excluding everything)."""
    lines = [
        line.strip()
        for line in (ROOT / f"{DOCKERFILE}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the filter must exclude everything first"
    return {line[1:].removesuffix("/**") for line in lines if line.startswith("!")}


def context_copies(doc: Dockerfile) -> set[str]:
    copied = {
        source
        for stage in doc.stages
        for words in copies(stage)
        if copy_from(words) is None
        for source in sources(words)
    }
    # `COPY pyproject.toml README.md ./` style lines name files; folders are the packages
    return {c.rstrip("/").removesuffix("/.") for c in copied} - {"."}


@pytest.mark.parametrize("name", TARGETS)
def test_each_image_is_pinned_multi_stage_non_root_and_lean(name: str) -> None:
    assert problems(name, (ROOT / DOCKERFILE).read_text(), torch_pin()) == []


def test_every_base_image_of_the_file_is_pinned() -> None:
    doc = parse((ROOT / DOCKERFILE).read_text())
    external = [s.image for s in doc.stages if not s.parent]
    assert external and all(DIGEST.match(image) for image in external), external
    assert doc.global_args["PYTHON_IMAGE"].startswith("python:3.11.13-slim-bookworm@sha256:")


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_runs_its_command_on_its_ports(name: str) -> None:
    doc = parse((ROOT / DOCKERFILE).read_text())
    chain = doc.chain(TARGETS[name])
    entrypoint, cmd = (last(chain, op) for op in ("ENTRYPOINT", "CMD"))
    assert (entrypoint and yaml.safe_load(entrypoint), cmd and yaml.safe_load(cmd)) == (
        COMMANDS[name]
    )
    assert {p for s in chain for rest in s.args("EXPOSE") for p in rest.split()} == PORTS[name]
    if name == "churn-monitor":
        assert env_of(chain)["CHURN_MONITOR_PORT"] == "8090"
    # the shared runtime's environment reaches every target
    env = env_of(chain)
    assert env["MPLCONFIGDIR"].startswith("/tmp/")
    assert (env["OMP_NUM_THREADS"], env["PYTHONUNBUFFERED"]) == ("1", "1")
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_the_images_share_one_builder_and_one_runtime() -> None:
    # the shared part is written once: every target's chain starts at the same runtime stage
    # and every target's builders include the same builder stage
    doc = parse((ROOT / DOCKERFILE).read_text())
    runtimes = {doc.chain(t)[-2].name for t in TARGETS.values()}
    roots = {doc.builders(t)[0].name for t in TARGETS.values()}
    assert len(runtimes) == 1 and len(roots) == 1, (runtimes, roots)
    assert all(len(doc.chain(t)) == 2 for t in TARGETS.values())
    assert sum("torch==" in r for s in doc.stages for r in s.args("RUN")) == 1


@pytest.mark.parametrize("name", sorted(ALIBI_IMAGES))
def test_the_drift_images_can_carry_alibi_once_licensed(name: str) -> None:
    doc = parse((ROOT / DOCKERFILE).read_text())
    runs = [r for s in doc.builders(TARGETS[name]) for r in s.args("RUN") if "alibi" in r]
    assert runs and all(LICENCE_GUARD.match(r) for r in runs)


def test_the_build_context_holds_exactly_what_the_dockerfile_copies() -> None:
    doc = parse((ROOT / DOCKERFILE).read_text())
    assert context_filter() == context_copies(doc)


@pytest.mark.parametrize("name", TARGETS)
def test_the_builder_installs_every_package_of_the_distribution(name: str) -> None:
    # pyproject.toml lists every package, and `churn` builds its parser from all of them
    doc = parse((ROOT / DOCKERFILE).read_text())
    copied = {words[0] for stage in doc.builders(TARGETS[name]) for words in copies(stage)}
    assert PACKAGES <= copied


# case -> (text replaced, replacement, the problem expected, the images that must catch it)
BROKEN = {
    "an unpinned base": (
        "FROM ${PYTHON_IMAGE} AS builder",
        "FROM python:3.11-slim AS builder",
        "base image python:3.11-slim is not pinned",
        set(TARGETS),
    ),
    "a root user": ("USER 1000:1000", "USER root", "USER root is not a numeric", set(TARGETS)),
    "a named user": ("USER 1000:1000", "USER churn", "USER churn is not a numeric", set(TARGETS)),
    "one stage": (
        "FROM runtime AS monitor",
        "FROM builder-alibi AS monitor",
        "monitor is built FROM the builder builder",
        {"churn-monitor"},
    ),
    "alibi without the licence": (
        "RUN pip install -c requirements/constraints.txt . \\\n",
        'RUN pip install -c requirements/constraints.txt ".[alibi]" \\\n',
        "alibi-detect installed without the licence argument",
        ALIBI_IMAGES,
    ),
    "the CUDA torch": (
        "pip install --index-url https://download.pytorch.org/whl/cpu torch==",
        "pip install torch==",
        "the CPU wheel, pinned as the Makefile pins it",
        set(TARGETS),
    ),
    "home on the root filesystem": (
        "HOME=/tmp",
        "HOME=/home/churn",
        "HOME='/home/churn': not on /tmp",
        set(TARGETS),
    ),
    "the whole context": (
        "COPY core core",
        "COPY . .",
        "builder copies ., which the image does not need",
        set(TARGETS),
    ),
    "pip in the runtime": (
        "USER 1000:1000",
        "RUN pip install requests\nUSER 1000:1000",
        "the runtime runs pip",
        set(TARGETS),
    ),
    "alibi in the serving image": (
        "FROM runtime AS serving\nCOPY --from=builder ",
        "FROM runtime AS serving\nCOPY --from=builder-alibi ",
        "churn-serving installs alibi-detect",
        {"churn-serving"},
    ),
    "a licence by default": (
        'ARG ALIBI_DETECT_LICENSE=""',
        "ARG ALIBI_DETECT_LICENSE=BSL",
        "the licence argument must default to empty",
        ALIBI_IMAGES,
    ),
    "the config where the process does not read it": (
        "ENV CHURN_CONFIG_PATH=/opt/churn/model_config.yaml\n",
        "ENV CHURN_CONFIG_PATH=/etc/churn.yaml\n",
        "CHURN_CONFIG_PATH='/etc/churn.yaml' is not where the image copies",
        {"churn-serving"},
    ),
    "the config in the rollout image": (
        "FROM runtime AS rollout\n",
        "FROM runtime AS rollout\nCOPY model_config.yaml /opt/churn/model_config.yaml\n",
        "runtime copies ['model_config.yaml'] from the context",
        {"churn-rollout"},
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=BROKEN)
def test_each_check_catches_a_broken_dockerfile(case: str) -> None:
    text = (ROOT / DOCKERFILE).read_text()
    old, new, reason, images = BROKEN[case]
    assert old in text, old
    broken = text.replace(old, new)
    for name in sorted(images):
        assert problems(name, text, torch_pin()) == []
        found = problems(name, broken, torch_pin())
        assert any(reason in p for p in found), (name, found)


def test_parse_resolves_the_base_argument_and_the_stage_chain() -> None:
    doc = parse(
        "ARG BASE=python:3.11-slim@sha256:" + "a" * 64 + "\n"
        "FROM ${BASE} AS builder\n"
        "RUN echo a \\\n"
        "    # a comment inside\n"
        "    && echo b\n"
        "FROM $BASE AS runtime\n"
        "USER 1000\n"
        "FROM --platform=linux/amd64 runtime AS app\n"
        "COPY --from=builder /opt/venv /opt/venv\n"
    )
    assert [s.image for s in doc.stages][:2] == ["python:3.11-slim@sha256:" + "a" * 64] * 2
    assert [s.parent for s in doc.stages] == [None, None, "runtime"]
    assert doc.stages[0].args("RUN") == ["echo a && echo b"]
    assert [s.name for s in doc.chain("app")] == ["runtime", "app"]
    assert [s.name for s in doc.builders("app")] == ["builder"]
    assert last(doc.chain("app"), "USER") == "1000"
    assert doc.chain("missing") == []


def test_the_images_workflow_builds_each_target_under_its_tag() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    for job in ("build", "push"):
        matrix = workflow["jobs"][job]["strategy"]["matrix"]["include"]
        assert {m["image"]: m["target"] for m in matrix} == TARGETS
        (components,) = [m for m in matrix if m["image"] == "churn-components"]
        tag = f"{components['image']}:{version()}{components['version_suffix']}"
        assert components_image().endswith(f"/{tag}")
        (build,) = [
            s["with"]
            for s in workflow["jobs"][job]["steps"]
            if s.get("uses", "").startswith("docker/build-push-action@")
        ]
        assert (build["context"], build["file"]) == (".", DOCKERFILE)
        assert build["target"] == "${{ matrix.target }}"
    # a pull request changing anything the images are built from builds them
    on = workflow.get("on", workflow.get(True))
    paths = set(on["pull_request"]["paths"])
    wanted = {DOCKERFILE, f"{DOCKERFILE}.dockerignore"} | {
        p if p in PROJECT_FILES | {"model_config.yaml"} else f"{p}/**" for p in context_filter()
    }
    assert wanted <= paths, wanted - paths


def _tools(bin_dir: Path) -> None:
    """`bin_dir` holding make, sed and the shells: a PATH with nothing else on it."""
    bin_dir.mkdir()
    for tool in ("make", "sed", "bash", "sh"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)


def _make_images(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """`make images` with only `bin_dir` on PATH."""
    return subprocess.run(
        [str(bin_dir / "make"), "--no-print-directory", "images"],
        cwd=ROOT,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_images_builds_each_target_under_its_tag(tmp_path: Path) -> None:
    # A `docker` on PATH that records its arguments (one line per call, tab-separated):
    # the real recipe runs, no daemon is needed.
    _tools(tmp_path / "bin")
    log = tmp_path / "docker.log"
    docker = tmp_path / "bin" / "docker"
    docker.write_text(f"#!/bin/sh\nprintf '%s\\t' \"$@\" >> '{log}'\necho >> '{log}'\n")
    docker.chmod(0o755)
    proc = _make_images(tmp_path / "bin")
    assert proc.returncode == 0, proc.stderr
    calls = [line.rstrip("\t").split("\t") for line in log.read_text().splitlines()]
    assert calls[0] == ["info"]
    built: dict[str, str] = {}
    for call in calls[1:]:
        assert call[0] == "build" and call[-1] == ".", call
        options = dict(zip(call[1:-1:2], call[2:-1:2], strict=True))
        assert options["-f"] == DOCKERFILE
        built[options["--target"]] = options["-t"]
    suffix = {"churn-components": "-python3.11"}
    assert built == {
        target: f"ghcr.io/churn-platform/{name}:{version()}{suffix.get(name, '')}"
        for name, target in TARGETS.items()
    }
    assert built["components"] == components_image()
    doc = parse((ROOT / DOCKERFILE).read_text())
    assert all(doc.stage(target) for target in built)


def test_make_images_without_docker_fails_with_a_clear_message(tmp_path: Path) -> None:
    # PATH without docker: make, sed and the shell only
    _tools(tmp_path / "bin")
    proc = _make_images(tmp_path / "bin")
    assert proc.returncode == 2
    assert "make images: no docker command on PATH" in proc.stderr
