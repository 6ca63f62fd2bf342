#!/usr/bin/env bash
# Sets up the environment (tools/setup_env.sh) and runs the test suite.
# Usage: bash tools/run_tests.sh [pytest arguments]
set -euo pipefail
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
venv_dir=${MMSCOPE_VENV:-$repo_dir/.venv}

bash "$repo_dir/tools/setup_env.sh" "$venv_dir"
cd "$repo_dir"
exec "$venv_dir/bin/python" -m pytest "$@"
