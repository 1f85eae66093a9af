# syntax=docker/dockerfile:1
# rewardserve serving image. The serving path needs no torch: ONNX Runtime, the fast
# tokenizer and gRPC. GPU image by default (onnxruntime-gpu on a CUDA runtime base); a CPU image:
#   docker build --build-arg VARIANT=cpu --build-arg BASE=python:3.11-slim-bookworm -t rewardserve:cpu .
# Models are ONNX bundles mounted at /models (made with `rewardserve export`).

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
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --create-home --uid 10001 rewardserve
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir /wheels/*.whl "rewardserve[${VARIANT}] @ file://$(ls /wheels/*.whl)" \
 && rm -rf /wheels
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REWARDSERVE_HOST=0.0.0.0 \
    REWARDSERVE_PORT=50051 \
    REWARDSERVE_METRICS_PORT=9090
USER rewardserve
EXPOSE 50051 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["rewardserve", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["rewardserve", "serve"]
CMD ["--model", "default=/models/default"]
