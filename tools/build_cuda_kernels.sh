#!/usr/bin/env bash
# Fetches, builds and installs the optional CUDA kernels of mmscope:
# causal-conv1d and mamba-ssm (the 'cuda' backend of mmscope.ops).
#
# Usage:
#   bash tools/build_cuda_kernels.sh fetch [DIR]
#   bash tools/build_cuda_kernels.sh build [DIR]
#
# 'fetch' downloads the pinned source archives from PyPI into DIR (default
# .kernels in the repository) and checks their SHA-256 sums. 'build' checks
# the sums again, builds the archives from DIR without any network access
# and installs them into the Python given by $PYTHON (default python3), which
# must hold a CUDA build of PyTorch, einops, triton, transformers, ninja and
# packaging. Copying DIR to a machine without network access and running
# 'build' there is enough.
#
# Both packages compile for six to nine GPU architectures by default. 'build'
# compiles only for one: $CUDA_ARCH (for example 9.0 for an H100 or H200), or
# the architecture of the first visible GPU when $CUDA_ARCH is unset. It builds
# the two packages at the same time with $MAX_JOBS compiler jobs (default: the
# number of cores) and writes each build log into DIR.
set -euo pipefail

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
python_bin=${PYTHON:-python3}

# name|version|url|sha256 of each source archive.
archives=(
    "causal-conv1d|1.6.1|https://files.pythonhosted.org/packages/63/15/ec51d77a2df03ee93410f8ee97fceeb7181da213813c51243e9dd6d7e144/causal_conv1d-1.6.1.tar.gz|e4a697ec2db3906f012e675125569f8b510b4559bc53e3095143d91369e1221b"
    "mamba-ssm|2.3.1|https://files.pythonhosted.org/packages/34/67/ec89aa703da194a813e35d2ea2de8f74a7ce6991a120a29f3a0c5e30d4b9/mamba_ssm-2.3.1.tar.gz|4d529477ad94753962216d583fc8f1c127c717b7d7c875d6bbb9376366d0d761"
)

usage() {
    [ $# -eq 0 ] || echo "[kernels] $*" >&2
    sed -n '5,7p' "$0" | sed 's/^# //' >&2
    exit 2
}

check_python() {
    if ! "$python_bin" -c 'import torch' 2>/dev/null; then
        echo "[kernels] $python_bin cannot import torch: set PYTHON to the" \
            "Python of the environment with a CUDA build of PyTorch, for" \
            "example PYTHON=.venv/bin/python" >&2
        exit 1
    fi
}

# Succeeds when FILE has the SHA-256 sum SHA256.
sum_matches() {
    local file=$1 sha256=$2
    echo "$sha256  $file" | sha256sum --check --status
}

# Downloads to a temporary name and keeps the archive only when its sum
# matches, so an interrupted or corrupted download leaves nothing behind.
fetch() {
    local dir=$1
    mkdir -p "$dir"
    for entry in "${archives[@]}"; do
        IFS='|' read -r name version url sha256 <<<"$entry"
        local file="$dir/${url##*/}"
        echo "[kernels] downloading $name $version"
        curl -sSfL -o "$file.part" "$url"
        if ! sum_matches "$file.part" "$sha256"; then
            rm -f "$file.part"
            echo "[kernels] the download of $url failed its check: its" \
                "SHA-256 sum is not the pinned $sha256, so nothing was" \
                "kept. Run fetch again" >&2
            exit 1
        fi
        mv "$file.part" "$file"
    done
    echo "[kernels] source archives are in $dir"
}

detect_arch() {
    if [ -n "${CUDA_ARCH:-}" ]; then
        echo "$CUDA_ARCH"
        return
    fi
    "$python_bin" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit('[kernels] no CUDA device is visible: set CUDA_ARCH to the '
             'architecture to build for, for example CUDA_ARCH=9.0')
major, minor = torch.cuda.get_device_capability(0)
print(f'{major}.{minor}')
EOF
}

# Keeps only the -gencode pair of one architecture in a package's setup.py,
# and raises its C++ standard to C++20 where PyTorch's headers need it
# (PyTorch 2.14 and later).
patch_setup() {
    "$python_bin" - "$1" "$2" <<'EOF'
import re
import sys

import torch

path, arch = sys.argv[1], sys.argv[2].replace('.', '')
with open(path, encoding='utf-8') as file:
    text = file.read()

pair = re.compile(r'^(?P<indent>[ \t]*)cc_flag\.append\("-gencode"\)\n'
                  r'(?P=indent)cc_flag\.append\("arch=compute_(?P<arch>\d+)'
                  r'[a-z]?,code=sm_\d+[a-z]?"\)$', re.MULTILINE)
found = [match.group('arch') for match in pair.finditer(text)]
if arch not in found:
    dotted = ', '.join(f'{code[:-1]}.{code[-1]}' for code in found)
    sys.exit(f'[kernels] {path} builds for compute capabilities {dotted}, '
             f'not {sys.argv[2]}: set CUDA_ARCH to one of them or update the '
             'pinned version')

text = pair.sub(
    lambda match: match.group(0) if match.group('arch') == arch
    else match.group('indent') + 'pass', text)

torch_version = tuple(int(part) for part in torch.__version__.split('.')[:2])
if torch_version >= (2, 14):
    text = text.replace('-std=c++17', '-std=c++20')

with open(path, 'w', encoding='utf-8') as file:
    file.write(text)
EOF
}

build_one() {
    local dir=$1 arch=$2 name=$3 version=$4 archive=$5
    local source="$dir/build/${archive%.tar.gz}"
    local log="$dir/build-$name.log"

    rm -rf "$source"
    mkdir -p "$dir/build"
    tar -xzf "$dir/$archive" -C "$dir/build"
    patch_setup "$source/setup.py" "$arch"

    local begin=$SECONDS
    if ! MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \
        MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "$python_bin" -m pip install --no-build-isolation --no-deps \
        --no-index --no-cache-dir "$source" >"$log" 2>&1; then
        echo "[kernels] building $name $version failed. The end of $log:" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
    echo "[kernels] built and installed $name $version in $((SECONDS - begin)) s"
}

build() {
    local dir=$1
    local arch
    check_python
    arch=$(detect_arch)
    echo "[kernels] building for compute capability $arch with $python_bin"

    local pids=()
    for entry in "${archives[@]}"; do
        IFS='|' read -r name version url sha256 <<<"$entry"
        local archive=${url##*/}
        if [ ! -f "$dir/$archive" ]; then
            echo "[kernels] $dir/$archive is missing: run" \
                "'bash tools/build_cuda_kernels.sh fetch $dir' first" >&2
            exit 1
        fi
        if ! sum_matches "$dir/$archive" "$sha256"; then
            echo "[kernels] $dir/$archive is damaged: its SHA-256 sum is not" \
                "the pinned $sha256. Delete it and run" \
                "'bash tools/build_cuda_kernels.sh fetch $dir' again" >&2
            exit 1
        fi
        build_one "$dir" "$arch" "$name" "$version" "$archive" &
        pids+=("$!")
    done

    local failed=0
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    if [ "$failed" -ne 0 ]; then
        exit 1
    fi

    "$python_bin" -c 'import causal_conv1d, mamba_ssm; print("[kernels] ready: causal_conv1d", causal_conv1d.__version__, "mamba_ssm", mamba_ssm.__version__)'
}

[ $# -ge 1 ] || usage 'missing command'
[ $# -le 2 ] || usage "too many arguments: $*"
command=$1
dir=${2:-$repo_dir/.kernels}
case "$command" in
    fetch) fetch "$dir" ;;
    build) build "$dir" ;;
    *) usage "unknown command '$command'" ;;
esac
