"""tools/analysis/check_gpu.py, run on the CPU (its dry-run mode)."""
import importlib.util
import math
import subprocess
import sys

import pytest
import torch

from tests.test_tools.test_train_tool import REPO_ROOT

SCRIPT = REPO_ROOT / 'tools' / 'analysis' / 'check_gpu.py'
SMALL = ['--device', 'cpu', '--lengths', '1', '33', '--dim', '8',
         '--state', '4', '--time-size', '1', '16', '4', '32', '--runs', '2']

# Runs the script with MMEngine made unimportable, as on a machine with only
# PyTorch, so mmscope.ops must be loaded on its own.
WITHOUT_MMENGINE = (
    'import runpy, sys; '
    "sys.modules['mmengine'] = None; "
    'sys.argv = sys.argv[1:]; '
    "runpy.run_path(sys.argv[0], run_name='__main__')")


def _load_script():
    spec = importlib.util.spec_from_file_location('check_gpu', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-c', WITHOUT_MMENGINE, str(SCRIPT), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_dry_run_without_openmmlab_packages(tmp_path):
    out = tmp_path / 'report' / 'gpu_check.md'
    result = _run_script(*SMALL, '--out', str(out))

    assert result.returncode == 0, result.stderr
    report = out.read_text()
    assert report == result.stdout
    assert '| scan: torch, cpu vs cpu | L=33, all, float32 |' in report
    assert '| conv1d: torch, cpu vs cpu | L=33, bias on, activation silu |' \
        in report
    # Per length: 6 scan cases for the cuda backend and 6 for the mamba-ssm
    # reference, 2 half dtypes, 4 conv1d cases for the cuda backend and 4
    # for the causal-conv1d reference, one scan and one conv1d device row.
    assert '48 comparisons: 4 passed, 0 failed, 44 skipped' in report
    assert 'mamba_ssm not importable' in report
    assert 'the cuda backend needs a CUDA device, not cpu' in report
    assert '| torch |' in report
    assert 'cuda backend not timed' in report


def test_require_kernels_fails_without_them():
    result = _run_script(*SMALL, '--no-timing', '--require-kernels')

    assert result.returncode == 1
    assert '0 skipped' in result.stdout
    assert 'Scan timing' not in result.stdout


def test_compare_grades_errors():
    check_gpu = _load_script()
    expected = {'output': torch.ones(4), 'u': torch.ones(4),
                'delta': torch.ones(4)}
    close = {'output': torch.ones(4), 'u': torch.ones(4),
             'delta': torch.full((4, ), 1.0005)}
    far = dict(close, u=torch.full((4, ), 1.01))
    nan = torch.full((4, ), math.nan)

    row = check_gpu.compare('scan', 'case', close, expected, 1e-3)
    assert row.status == 'PASS'
    assert row.worst_grad == 'delta'
    assert row.grad_error == pytest.approx(5e-4, rel=1e-3)

    row = check_gpu.compare('scan', 'case', far, expected, 1e-3)
    assert (row.status, row.worst_grad) == ('FAIL', 'u')
    # A NaN anywhere fails the row, wherever it sits among the errors.
    for name in ('output', 'u', 'delta'):
        row = check_gpu.compare('scan', 'case', dict(close, **{name: nan}),
                                expected, 1e-3)
        assert row.status == 'FAIL', name
    with_state = dict(expected, last_state=torch.ones(4))
    row = check_gpu.compare('scan', 'case', dict(with_state, last_state=nan),
                            with_state, 1e-3)
    assert (row.status, math.isnan(row.output_error)) == ('FAIL', True)
    row = check_gpu.compare('scan', 'case', dict(close, delta=nan), expected,
                            1e-3)
    assert (row.worst_grad, math.isnan(row.grad_error)) == ('delta', True)


def test_device_rows_detect_cpu_difference(monkeypatch):
    # The checked device is the CPU here too, so perturb the results of the
    # CPU reference runs, which get their own device object.
    check_gpu = _load_script()
    ops = check_gpu.load_ops()
    args = check_gpu.parse_args(SMALL + ['--lengths', '5'])
    real_run_scan = check_gpu.run_scan

    def run_scan(scan, case, device, seed):
        results = real_run_scan(scan, case, device, seed)
        if device is not args.device:
            results['output'] = results['output'] * 1.01
        return results

    monkeypatch.setattr(check_gpu, 'run_scan', run_scan)
    kernels = check_gpu.kernel_status(ops, args.device)
    references = check_gpu.upstream_references()
    rows = check_gpu.scan_rows(ops, args, kernels, references)
    device_rows = [row for row in rows if row.check.startswith('scan: torch')]

    assert [row.status for row in device_rows] == ['FAIL']
    assert device_rows[0].output_error == pytest.approx(0.01 / 1.01,
                                                        rel=1e-3)


def _reference_rows(check_gpu, scan_reference, conv_reference):
    ops = check_gpu.load_ops()
    args = check_gpu.parse_args(SMALL + ['--lengths', '1', '40'])
    kernels = check_gpu.kernel_status(ops, args.device)
    references = {
        'scan': check_gpu.Candidate(scan_reference),
        'conv': check_gpu.Candidate(conv_reference),
    }
    rows = (check_gpu.scan_rows(ops, args, kernels, references) +
            check_gpu.conv_rows(ops, args, kernels, references))
    return [row for row in rows if 'reference' in row.check]


def test_reference_rows_compare_with_the_given_functions():
    # mmscope's sequential oracle and an F.conv1d form stand in for the
    # kernel packages' references, which CI does not install.
    check_gpu = _load_script()
    ops = check_gpu.load_ops()

    def conv_reference(x, weight, bias=None, activation=None):
        out = torch.nn.functional.conv1d(x, weight.unsqueeze(1), bias,
                                         padding=weight.shape[1] - 1,
                                         groups=x.shape[1])
        out = out[..., :x.shape[-1]]
        return out if activation is None else torch.nn.functional.silu(out)

    rows = _reference_rows(check_gpu, ops.selective_scan_ref, conv_reference)
    assert len(rows) == 2 * (6 + 4)
    assert {row.status for row in rows} == {'PASS'}

    def shifted_scan(**kwargs):
        out, last_state = ops.selective_scan_ref(**kwargs)
        return out + 1e-2 * out.detach().abs().mean(), last_state

    def no_silu(x, weight, bias=None, activation=None):
        return conv_reference(x, weight, bias)

    rows = _reference_rows(check_gpu, shifted_scan, no_silu)
    statuses = {}
    for row in rows:
        key = (row.check.split(':')[0], row.case.split(', ')[-1])
        statuses.setdefault(key, set()).add(row.status)
    assert statuses == {
        ('scan', 'float32'): {'FAIL'},
        ('conv1d', 'activation silu'): {'FAIL'},
        ('conv1d', 'activation None'): {'PASS'},
    }


@pytest.mark.parametrize('args, message', [
    (['--lengths', '0'], '--lengths must be at least 1, got 0'),
    (['--tolerance', '0'], '--tolerance must be positive'),
    (['--reference-tolerance', '-1'],
     '--reference-tolerance must be positive'),
    (['--device', 'gpu0'], "--device 'gpu0' is not supported"),
    (['--device', 'meta'], "--device 'meta' is not supported"),
    (['--out', 'missing_folder/'], 'is a folder'),
])
def test_bad_arguments(args, message):
    result = _run_script('--device', 'cpu', *args)

    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_device_without_cuda():
    result = _run_script('--device', 'cuda')

    assert result.returncode == 2
    assert 'sees no CUDA device' in result.stderr
    assert '--device cpu' in result.stderr


def test_out_folder_rejected(tmp_path):
    result = _run_script('--device', 'cpu', '--out', str(tmp_path))

    assert result.returncode == 2
    assert 'is a folder' in result.stderr


def test_out_keeps_old_report(tmp_path):
    check_gpu = _load_script()
    old = tmp_path / 'old.md'
    old.write_text('earlier report\n')
    new = tmp_path / 'sub' / 'new.md'

    check_gpu.parse_args(['--device', 'cpu', '--out', str(old)])
    check_gpu.parse_args(['--device', 'cpu', '--out', str(new)])

    # The old report stays until a finished run replaces it, and no empty
    # report is left behind by the check alone.
    assert old.read_text() == 'earlier report\n'
    assert not new.exists()
