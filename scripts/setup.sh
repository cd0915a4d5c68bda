#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs lgeseg with its test tools into it.
# torch: a machine with an NVIDIA GPU gets PyPI's CUDA build. Without one, the CPU build of torch 2.13.0
# comes from PyTorch's CPU wheel index (LGESEG_TORCH_CPU_INDEX, default https://download.pytorch.org/whl/cpu;
# ~200 MB instead of PyPI's multi-GB CUDA build); when that index cannot be reached within 10 s (a machine
# whose pip uses a local mirror or wheel folder only), pip installs torch==2.13.0 from its configured sources.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
torch_version="2.13.0"
cpu_index="${LGESEG_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
if [ ! -x "$venv/bin/python" ]; then
    echo "[lgeseg setup] creating $venv"
    "$python" -m venv "$venv"
fi
pip_quiet=(-q --disable-pip-version-check)
# pip: quiet, and without the noise about package-index folders this machine's pip config names.
pip_install() { "$venv/bin/pip" install "${pip_quiet[@]}" "$@" 2> >(grep -v "^WARNING: Location" >&2); }
# True when the index answers within 10 s (no retries: an unreachable host must not stall the set-up).
index_reachable() {
    "$venv/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
        "$1/torch/" >/dev/null 2>&1
}
install_cpu_torch() {
    if index_reachable "$cpu_index"; then
        echo "[lgeseg setup] no CUDA GPU: installing the CPU build of torch $torch_version from $cpu_index"
        if pip_install --index-url "$cpu_index" --timeout 60 "torch==$torch_version"; then
            return 0
        fi
        echo "[lgeseg setup] the CPU index failed; installing torch==$torch_version from pip's configured index"
    else
        echo "[lgeseg setup] no CUDA GPU and $cpu_index not reachable: installing torch==$torch_version from" \
             "pip's configured sources (a CPU build where they hold one, e.g. a local wheel folder)"
    fi
    pip_install "torch==$torch_version"
}
stamp="$venv/.lgeseg-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            echo "[lgeseg setup] NVIDIA GPU found: installing the CUDA build of torch"
            pip_install "torch>=2.1"
        else
            install_cpu_torch
        fi
    fi
    echo "[lgeseg setup] installing lgeseg and its dependencies"
    pip_install -e "$root[dev,dicom]"
    "$venv/bin/python" -c "import lgeseg, torch, SimpleITK, scipy, skimage" || { echo "[lgeseg setup] install failed" >&2; exit 1; }
    touch "$stamp"
fi
