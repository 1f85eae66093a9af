#!/usr/bin/env bash
# Set up rewardserve on a fresh machine: a virtual environment in .venv with the CPU build of
# torch installed BEFORE the project (so nothing pulls a multi-GB CUDA build), then the
# project with its test extras. Idempotent: a second run only checks.
#   REWARDSERVE_EXTRAS=gpu  bash scripts/setup.sh   # GPU host: onnxruntime-gpu instead
# The default extras (test) include `cpu`: onnxruntime and the OpenVINO runtime (the openvino backend).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${REWARDSERVE_EXTRAS:-test}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION (CPU build)"
  # On this project's machines pip finds the CPU wheel on local disk; elsewhere pass
  # PIP_INDEX_URL=https://download.pytorch.org/whl/cpu (or your mirror) for the CPU build.
  .venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
fi
echo "setup: installing rewardserve[$EXTRAS]"
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
# tests/deploy runs the real Prometheus server: the Debian package (19 MB download, ~10 s).
if [[ ",$EXTRAS," == *",test,"* ]] && ! command -v prometheus >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing prometheus (Debian package, for tests/deploy)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
  else
    echo "setup: prometheus is missing and needs root's apt-get: install it, or set" \
         "REWARDSERVE_SKIP_PROMETHEUS=1 to skip the tests that run it" >&2
  fi
fi
echo "setup: done ($(.venv/bin/python -c '
import importlib.util, torch, onnxruntime
ov = importlib.util.find_spec("openvino") and __import__("openvino").__version__
print("torch", torch.__version__, "onnxruntime", onnxruntime.__version__, "openvino", ov or "not installed")'))"
