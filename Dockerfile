# syntax=docker/dockerfile:1
# The platform's four images, one build target each:
#   components  churn-components  every KFP component of the platform runs in it. kfp and the
#               project are installed here, so the components are declared with
#               install_kfp_package=False. The tag must equal COMPONENTS_IMAGE in
#               components/common.py (a unit test checks it).
#   serving     churn-serving     `churn serve` (KServe ModelServer with the churn predictor and
#               its explainer). KServe's storage initializer puts the bundle in /mnt/models.
#   monitor     churn-monitor     the drift service: `churn monitor serve` receives the payload
#               logger's CloudEvents, tests each window for drift, estimates and realizes the
#               model's performance, exports Prometheus metrics and fires the retraining trigger.
#   rollout     churn-rollout     the rollout controller: `churn rollout` moves a KServe
#               InferenceService's canary 5 -> 25 -> 100, each step decided by gates over
#               Prometheus, and rolls back when a gate fails.
#
# Why one file at the repository root: the project is one distribution whose console script
# `churn` builds its parser from every package, so each image installs all of them, from the
# root as build context. The build is the same for all four and belongs to no package folder;
# it sits beside pyproject.toml, which it installs, and its context filter beside it
# (Dockerfile.dockerignore: BuildKit reads <Dockerfile>.dockerignore). Only the last stages,
# one per image, hold what differs.
#
# Build from the repository root, one target per image:
#   docker build --target components -f Dockerfile -t ghcr.io/churn-platform/churn-components:0.1.0-python3.11 .
#   docker build --target serving -f Dockerfile -t ghcr.io/churn-platform/churn-serving:0.1.0 .
#   docker build --target monitor -f Dockerfile -t ghcr.io/churn-platform/churn-monitor:0.1.0 .
#   docker build --target rollout -f Dockerfile -t ghcr.io/churn-platform/churn-rollout:0.1.0 .
# or `make images` for all four.
#
# Stages: the builder installs the project and its pinned dependencies into a virtual
# environment (builder-alibi adds the optional alibi-detect backend on top of it); the runtime
# is a fresh slim image that receives only that environment (no compiler, no pip cache, no
# source tree); each target starts from the runtime and adds its environment, its config and
# its command.
#
# Base image: python:3.11.13-slim-bookworm (Python 3.11.13, released 2025-06-03, on Debian 12),
# pinned by its multi-platform index digest, as pinned by public projects in 2025. Bump tag
# and digest together (`docker buildx imagetools inspect python:3.11-slim-bookworm`).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# torch first, the CPU-only wheel from PyTorch's CPU index, pinned as the Makefile pins it
# (PyPI's Linux wheel brings gigabytes of CUDA libraries).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
# Then the project with every dependency pinned by the constraints file; a code change
# rebuilds from here and keeps the torch layer. The smoke check imports every image's entry
# modules: all four images carry this same environment.
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY core core
COPY model model
COPY components components
COPY pipelines pipelines
COPY inference inference
COPY monitoring monitoring
COPY rollout rollout
RUN pip install -c requirements/constraints.txt . \
    && python -c "import churn_components.data.steps, churn_core.store, kfp, churn_inference.predictor, churn_inference.server, churn_monitoring, churn_model.drift, churn_rollout"

# alibi-detect (the drift detectors' second backend) is under the Business Source License 1.1:
# it goes into an image only when a licence is configured, named by this build argument
# (e.g. --build-arg ALIBI_DETECT_LICENSE=<your licence reference>). Empty: not installed.
# Only the images that run drift detectors (components, monitor) build from this stage;
# serving and rollout take the plain builder's environment whatever the argument says.
FROM builder AS builder-alibi
ARG ALIBI_DETECT_LICENSE=""
RUN if [ -n "$ALIBI_DETECT_LICENSE" ]; then \
        echo "alibi-detect licence: $ALIBI_DETECT_LICENSE" \
        && pip install -c requirements/constraints.txt ".[alibi]" \
        && python -c "import alibi_detect"; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: the OpenMP runtime xgboost and torch load.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 churn \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin churn
# The root filesystem is read-only in the cluster: everything that writes (HOME, temporary
# files, matplotlib's cache) goes to /tmp, which the chart mounts as a size-limited emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    OMP_NUM_THREADS=1
WORKDIR /tmp
USER 1000:1000

# churn-components: KFP sets each component's command, so the image sets none.
FROM runtime AS components
COPY --from=builder-alibi /opt/venv /opt/venv

# churn-serving: REST on 8080, gRPC on 8081; the config read from CHURN_CONFIG_PATH.
FROM runtime AS serving
COPY --from=builder /opt/venv /opt/venv
COPY model_config.yaml /opt/churn/model_config.yaml
ENV CHURN_CONFIG_PATH=/opt/churn/model_config.yaml
EXPOSE 8080 8081
ENTRYPOINT ["churn"]
CMD ["serve", "--bundle", "/mnt/models"]

# churn-monitor: CloudEvents in and Prometheus metrics out on 8090; the config as for serving.
FROM runtime AS monitor
COPY --from=builder-alibi /opt/venv /opt/venv
COPY model_config.yaml /opt/churn/model_config.yaml
ENV CHURN_CONFIG_PATH=/opt/churn/model_config.yaml \
    CHURN_MONITOR_PORT=8090
EXPOSE 8090
ENTRYPOINT ["churn"]
CMD ["monitor", "serve"]

# churn-rollout: the chart's Job sets its own command (`churn rollout run ...`); run bare,
# the image prints the usage.
FROM runtime AS rollout
COPY --from=builder /opt/venv /opt/venv
ENTRYPOINT ["churn"]
CMD ["rollout", "--help"]
