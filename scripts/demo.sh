#!/usr/bin/env bash
# Installs lgeseg into ./.venv if needed, then runs the main job on the embedded synthetic data
# (extra arguments go to lgeseg_demo; see lgeseg_demo --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/lgeseg_demo" "$@"
