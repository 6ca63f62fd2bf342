#!/usr/bin/env bash
# Creates (or updates) the Python environment that mmscope runs in.
#
# Usage: bash tools/setup_env.sh [VENV_DIR]
#
# VENV_DIR defaults to $MMSCOPE_VENV or .venv beside this repository. The
# script is idempotent: a second run only checks what is already installed.
# mmcv 2.1.0 has no wheel for this Python and PyTorch on PyPI, so its first
# installation builds it from source with its C++ ops. That takes about 11
# minutes on two cores, and pip keeps the built wheel in its cache.
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
venv_dir=${1:-${MMSCOPE_VENV:-$repo_dir/.venv}}
python_bin=${PYTHON:-python3}

if [ ! -x "$venv_dir/bin/python" ]; then
    echo "[setup] creating virtual environment in $venv_dir"
    "$python_bin" -m venv "$venv_dir"
fi
pip=("$venv_dir/bin/python" -m pip)
py=("$venv_dir/bin/python")

"${pip[@]}" install --quiet wheel ninja

# PyTorch: any build >= 2.1 works. Install the CPU wheel only when no torch
# is present, so a CUDA build that is already installed is kept.
if ! "${py[@]}" -c 'import torch' 2>/dev/null; then
    echo "[setup] installing PyTorch ${MMSCOPE_TORCH_SPEC:-torch==2.13.0}"
    "${pip[@]}" install --quiet "${MMSCOPE_TORCH_SPEC:-torch==2.13.0}"
fi

"${pip[@]}" install --quiet 'numpy<2' 'mmengine>=0.10.0,<0.11'

# mmcv with its ops, built against the torch installed above. Its setup.py
# imports pkg_resources, which setuptools 81 removed, and the torch wheel may
# have pulled in a newer setuptools, so the pin comes after torch.
"${pip[@]}" install --quiet 'setuptools<81'
if ! "${py[@]}" -c 'import mmcv.ops' 2>/dev/null; then
    echo "[setup] building mmcv 2.1.0 with its ops (first time: about 11 minutes on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "${pip[@]}" install --no-build-isolation 'mmcv==2.1.0'
fi

echo "[setup] installing mmsegmentation, mmdetection and mmscope"
"${pip[@]}" install --quiet -e "$repo_dir[tests]"

"${py[@]}" -c 'import mmcv.ops, mmseg, mmdet, mmscope; print("[setup] ready: torch", __import__("torch").__version__, "mmcv", mmcv.__version__, "mmseg", mmseg.__version__, "mmdet", mmdet.__version__)'
