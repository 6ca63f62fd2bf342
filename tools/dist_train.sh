#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]
# Uses NCCL on GPUs and gloo on CPU-only machines. NNODES, NODE_RANK,
# MASTER_ADDR and PORT set up runs over several nodes.
set -euo pipefail
USAGE='bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]'
source "$(dirname "$0")/dist_common.sh"

require_arguments 2 "$@"
CONFIG=$1
NPROC=$2
shift 2
check_process_count "$NPROC"
require_file CONFIG "$CONFIG"
run_distributed train.py "$NPROC" "$CONFIG" "$@"
