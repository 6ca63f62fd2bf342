#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py options]
# Uses NCCL on GPUs and gloo on CPU-only machines. NNODES, NODE_RANK,
# MASTER_ADDR and PORT set up runs over several nodes.
set -euo pipefail
USAGE='bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py options]'
source "$(dirname "$0")/dist_common.sh"

require_arguments 3 "$@"
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
check_process_count "$NPROC"
require_file CONFIG "$CONFIG"
require_file CHECKPOINT "$CHECKPOINT"
run_distributed test.py "$NPROC" "$CONFIG" "$CHECKPOINT" "$@"
