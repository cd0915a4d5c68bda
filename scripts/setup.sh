#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs lgeseg with its test tools into it.
# CPU-only machines get the CPU build of torch 2.13.0; machines with an NVIDIA GPU get the CUDA build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "[lgeseg setup] creating $venv"
    "$python" -m venv "$venv"
fi
pip_quiet=(-q --disable-pip-version-check)
# pip: quiet, and without the noise about package-index folders this machine's pip config names.
pip_install() { "$venv/bin/pip" install "${pip_quiet[@]}" "$@" 2> >(grep -v "^WARNING: Location" >&2); }
stamp="$venv/.lgeseg-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            echo "[lgeseg setup] NVIDIA GPU found: installing the CUDA build of torch"
            pip_install "torch>=2.1"
        else
            echo "[lgeseg setup] no CUDA GPU: installing the CPU build of torch 2.13.0"
            pip_install "torch==2.13.0"
        fi
    fi
    echo "[lgeseg setup] installing lgeseg and its dependencies"
    pip_install -e "$root[dev,dicom]"
    "$venv/bin/python" -c "import lgeseg, torch, SimpleITK, scipy, skimage" || { echo "[lgeseg setup] install failed" >&2; exit 1; }
    touch "$stamp"
fi
