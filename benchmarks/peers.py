"""Other reward servers, run unmodified beside rewardserve in the same benchmark run.

The real OpenRLHF ``serve_rm`` (openrlhf 0.11.2, bf16, sdpa) through
``../shared/peers/openrlhf_serve_rm.sh``, which keeps it in its own venv. It joins a run only
when that venv and its model exist (``openrlhf_serve_rm.sh setup /tmp/orl-model`` builds both,
about 3 minutes); otherwise it is skipped with the reason. Its model is all-MiniLM-L6-v2 with
an untrained value head: the same architecture and size as the default HH reward model, so its
speed, not its rewards, is what is compared. It speaks only HTTP and is driven by the
OpenRLHF-style client (:mod:`benchmarks.http_client`). Nothing of OpenRLHF is changed; only
``OMP_WAIT_POLICY=PASSIVE`` is set, as for the PyTorch baseline (it makes serve_rm faster here,
so ratios against it are conservative).

Example::

    reason = serve_rm_missing(venv, model)
    server = serve_rm(log_dir, max_len=256, venv=venv, model=model) if reason is None else None
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rewardserve.benchmarks.server_proc import REPO, ServerProcess, free_port

PEERS_DIR = REPO.parent / "shared" / "peers"
SERVE_RM_SCRIPT = PEERS_DIR / "openrlhf_serve_rm.sh"
SERVE_RM_VENV = Path(os.environ.get("ORL_VENV", "/tmp/orl-venv"))
SERVE_RM_MODEL = Path("/tmp/orl-model")
LITSERVE_SCRIPT = PEERS_DIR / "litserve_rm.py"
LITSERVE_VENV = Path(os.environ.get("LITSERVE_VENV", "/tmp/ls-venv"))


def serve_rm_missing(venv: Path = SERVE_RM_VENV, model: Path = SERVE_RM_MODEL) -> str | None:
    """Why ``serve_rm`` cannot join this run, or None when it can."""
    if not SERVE_RM_SCRIPT.is_file():
        return f"{SERVE_RM_SCRIPT} not found"
    if not (venv / ".orl-serve-rm-ready").is_file():
        return f"no serve_rm environment in {venv} (bash {SERVE_RM_SCRIPT} setup {model})"
    if not (model / "model.safetensors").is_file():
        return f"no serve_rm model in {model} (bash {SERVE_RM_SCRIPT} setup {model})"
    return None


def serve_rm(log_dir: Path, max_len: int, venv: Path = SERVE_RM_VENV, model: Path = SERVE_RM_MODEL) -> ServerProcess:
    """OpenRLHF ``serve_rm`` on a free port, ``--data.max_len`` as the served model's max_length."""
    port = free_port()
    argv = ["bash", str(SERVE_RM_SCRIPT), str(port), str(model), "--data.max_len", str(max_len)]
    # Passive OpenMP waits, as for the per-request PyTorch baseline: spinning OpenMP threads would
    # fight the load generator for a small machine's cores and make serve_rm look slower than it is.
    return ServerProcess("openrlhf-serve_rm", argv, None, None, log_dir / "openrlhf-serve_rm.log",
                         env={"ORL_VENV": str(venv), "OMP_WAIT_POLICY": "PASSIVE"}, http_port=port)


def litserve_missing(venv: Path = LITSERVE_VENV) -> str | None:
    """Why the LitServe peer cannot join this run, or None when it can."""
    if not LITSERVE_SCRIPT.is_file():
        return f"{LITSERVE_SCRIPT} not found"
    py = venv / "bin" / "python"
    if not py.is_file():
        return f"no LitServe venv in {venv} (python3 -m venv {venv} && {venv}/bin/pip install litserve onnxruntime transformers)"
    found = subprocess.run([str(py), "-c", "import litserve, onnxruntime, transformers"], capture_output=True)
    return None if found.returncode == 0 else f"{venv} lacks litserve, onnxruntime or transformers"


def litserve(log_dir: Path, bundle: Path, max_length: int, threads: int, venv: Path = LITSERVE_VENV) -> ServerProcess:
    """The LitServe peer (``../shared/peers/litserve_rm.py``, unmodified) on the bundle's ``model_fp32.onnx``:
    dynamic batches of up to 64 texts, 5 ms, padded to their longest; ``POST /predict {"text"}``."""
    port = free_port()
    argv = [str(venv / "bin" / "python"), str(LITSERVE_SCRIPT), str(bundle), "--onnx", "model_fp32.onnx",
            "--max-length", str(max_length), "--port", str(port)]
    return ServerProcess("litserve", argv, None, None, log_dir / "litserve.log", http_port=port,
                         env={"PEER_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}, http_path="/predict",
                         ready_body={"text": "hello"})
