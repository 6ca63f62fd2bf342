#!/usr/bin/env bash
# Sets up the environment (tools/setup_env.sh), then trains MambaScope-small
# with UperNet on the real ADE20K images shipped in data/ade20k_mini,
# evaluates it, runs the mmseg inference APIs on a shipped photo and saves the
# prediction and refinement-map PNGs (tools/main_job.py).
# Usage: bash tools/run_main_job.sh [main_job.py options], for example
#        --task det for Mask R-CNN on data/coco_mini.
set -euo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
venv_dir=${MMSCOPE_VENV:-$repo_dir/.venv}

bash "$repo_dir/tools/setup_env.sh" "$venv_dir"
cd "$repo_dir"
exec "$venv_dir/bin/python" tools/main_job.py "$@"
