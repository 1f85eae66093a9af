# syntax=docker/dockerfile:1
# rewardserve serving image. The serving path needs no torch: ONNX Runtime, the fast
# tokenizer and gRPC. GPU image by default (onnxruntime-gpu on a CUDA runtime base); a CPU image:
#   docker build --build-arg VARIANT=cpu --build-arg BASE=python:3.11-slim-bookworm -t rewardserve:cpu .
# Models are ONNX bundles mounted at /models (made with `rewardserve export`); the image holds
# no torch, so it serves bundles and does not build the default models. See deploy/README.md.

ARG BASE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---- build: a wheel of the project (no heavy dependencies needed to build it)
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rewardserve ./rewardserve
COPY service ./service
COPY export ./export
COPY training ./training
COPY benchmarks ./benchmarks
RUN pip install --no-cache-dir build==1.2.2 && python -m build --wheel --outdir /wheels .

# ---- runtime: the serving dependencies only, as a non-root user
FROM ${BASE} AS runtime
ARG VARIANT=gpu
# The CUDA base has no Python; the python base has it with ensurepip (venv needs ensurepip).
# Not version-pinned: the bases are different distributions, no one apt version fits both.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --gid 10001 rewardserve \
 && useradd --create-home --uid 10001 --gid 10001 rewardserve
COPY --from=build /wheels /wheels
# The wheel with the serving dependencies and one ONNX Runtime build: extra `gpu` or `cpu`.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/*.whl)[${VARIANT}]" \
 && rm -rf /wheels
# gRPC and /metrics listen on every interface (the defaults are loopback), on the default
# ports: gRPC 50051, metrics 9400.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REWARDSERVE_HOST=0.0.0.0 \
    REWARDSERVE_METRICS_HOST=0.0.0.0
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 50051 9400
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["rewardserve", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["rewardserve", "serve"]
CMD ["--model", "default=/models/default"]
