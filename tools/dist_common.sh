# Argument checks and the torchrun call shared by tools/dist_train.sh and
# tools/dist_test.sh. The caller sets USAGE before sourcing this file.

usage_error() {
    echo "$*" >&2
    echo "Usage: $USAGE" >&2
    exit 2
}

# Exits with the usage line unless there are at least $1 arguments.
require_arguments() {
    local needed=$1
    shift
    [ $# -ge "$needed" ] || usage_error "missing arguments: got $#, need $needed."
}

# Exits unless the file $2, given as argument $1, exists. Checked here, the
# error appears once instead of once per process.
require_file() {
    [ -f "$2" ] || usage_error "$1 not found: $2"
}

# Exits unless $1 is a whole number of at least 1.
check_process_count() {
    [[ $1 =~ ^[1-9][0-9]*$ ]] || usage_error \
        "NUM_PROCESSES must be a whole number of at least 1, got '$1'."
}

# Exits unless the Python that runs the processes imports torch and mmscope.
# Checked here, a wrong interpreter gives one line instead of one traceback
# per process.
require_environment() {
    local python=${PYTHON:-python}
    "$python" -c 'import torch, mmscope' 2>/dev/null || usage_error \
        "$python cannot import torch and mmscope. Activate the environment" \
        "that tools/setup_env.sh created (source .venv/bin/activate), or set" \
        "PYTHON=.venv/bin/python."
}

# Runs tools/$1 with the remaining arguments in NUM_PROCESSES ($2) processes
# on this node, with the pytorch launcher.
run_distributed() {
    local script=$1 nproc=$2
    shift 2
    require_environment
    "${PYTHON:-python}" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$nproc" --master_port="${PORT:-29500}" \
        "$(dirname "${BASH_SOURCE[0]}")/$script" "$@" --launcher pytorch
}
