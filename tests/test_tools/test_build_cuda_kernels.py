"""Argument and environment checks of tools/build_cuda_kernels.sh.

A full build needs nvcc and takes about half an hour on two cores, so these
tests stop the script before it compiles anything.
"""
import os
import subprocess
import sys

import pytest
import torch

from tests.test_tools.test_train_tool import REPO_ROOT

SCRIPT = str(REPO_ROOT / 'tools' / 'build_cuda_kernels.sh')


def _run(*args, **env):
    return subprocess.run(['bash', SCRIPT, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env))


@pytest.mark.parametrize('args, message', [
    ((), 'missing command'),
    (('compile', ), "unknown command 'compile'"),
    (('fetch', 'a', 'b'), 'too many arguments'),
])
def test_usage_errors(args, message):
    result = _run(*args)

    assert result.returncode == 2
    assert message in result.stderr
    assert 'build_cuda_kernels.sh build [DIR]' in result.stderr


def test_build_without_torch_names_python(tmp_path):
    fake_python = tmp_path / 'python'
    fake_python.write_text('#!/bin/sh\nexit 1\n')
    fake_python.chmod(0o755)

    result = _run('build', str(tmp_path), PYTHON=str(fake_python))

    assert result.returncode == 1
    assert 'cannot import torch: set PYTHON' in result.stderr


def test_build_without_archives(tmp_path):
    result = _run('build', str(tmp_path), PYTHON=sys.executable,
                  CUDA_ARCH='9.0')

    assert result.returncode == 1
    assert 'causal_conv1d-1.6.1.tar.gz is missing' in result.stderr
    assert f'build_cuda_kernels.sh fetch {tmp_path}' in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='a CUDA device is visible')
def test_build_without_gpu_needs_arch(tmp_path):
    result = _run('build', str(tmp_path), PYTHON=sys.executable,
                  CUDA_ARCH='')

    assert result.returncode == 1
    assert 'no CUDA device is visible: set CUDA_ARCH' in result.stderr


def test_build_rejects_damaged_archive(tmp_path):
    (tmp_path / 'causal_conv1d-1.6.1.tar.gz').write_bytes(b'truncated')

    result = _run('build', str(tmp_path), PYTHON=sys.executable,
                  CUDA_ARCH='9.0')

    assert result.returncode == 1
    assert 'causal_conv1d-1.6.1.tar.gz is damaged' in result.stderr
    assert 'Delete it and run' in result.stderr
    assert 'gzip' not in result.stderr


def test_fetch_keeps_no_download_with_wrong_sum(tmp_path):
    # A stand-in curl that writes other bytes than the pinned archive.
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake_curl = bin_dir / 'curl'
    fake_curl.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\n'
                         'echo not-an-archive > "$2"\n')
    fake_curl.chmod(0o755)
    out_dir = tmp_path / 'kernels'

    result = _run('fetch', str(out_dir),
                  PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    assert result.returncode == 1
    assert 'SHA-256 sum is not the pinned' in result.stderr
    assert list(out_dir.iterdir()) == []
