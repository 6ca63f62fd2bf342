"""Tests of the selective scan backends against the sequential reference."""
import importlib
from typing import Dict, List, Optional

import pytest
import torch

from mmscope.ops import (SelectiveScanFunction, get_scan_backend,
                         selective_scan, selective_scan_ref)

scan_module = importlib.import_module('mmscope.ops.selective_scan')

INPUT_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')

# Each case turns on a subset of the optional terms. 'none' and 'all'
# together with the single-term cases cover every term with and without.
OPTION_CASES = {
    'none': dict(),
    'D': dict(with_D=True),
    'z': dict(with_z=True),
    'delta_bias': dict(with_bias=True),
    'softplus': dict(delta_softplus=True),
    'all': dict(with_D=True, with_z=True, with_bias=True,
                delta_softplus=True),
}

# The float32 torch backend and reference accumulate in a different order
# (vectorized tensors and einsum versus a per-step loop), so they differ
# by rounding only. 1e-4 is about 840 times the float32 machine epsilon.
FLOAT32_RTOL = 1e-4


def make_inputs(batch: int = 2,
                dim: int = 4,
                state: int = 4,
                length: int = 16,
                with_D: bool = False,
                with_z: bool = False,
                with_bias: bool = False,
                delta_softplus: bool = False,
                dtype: torch.dtype = torch.float32,
                seed: int = 0) -> Dict[str, Optional[torch.Tensor]]:
    """Build random selective scan inputs with a stable recurrence.

    ``A`` is negative and the effective step sizes are positive, so every
    decay ``exp(delta * A)`` is below 1 and the states stay bounded over
    long sequences.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape: int, low: float, high: float) -> torch.Tensor:
        values = torch.rand(*shape, generator=generator, dtype=torch.float64)
        return (low + (high - low) * values).to(dtype)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator,
                           dtype=torch.float64).to(dtype)

    if delta_softplus:
        delta = normal(batch, dim, length) - 1.0
    else:
        delta = uniform(batch, dim, length, low=0.01, high=0.5)

    return {
        'u': normal(batch, dim, length),
        'delta': delta,
        'A': -torch.exp(uniform(dim, state, low=-1.0, high=1.5)),
        'B': normal(batch, state, length),
        'C': normal(batch, state, length),
        'D': normal(dim) if with_D else None,
        'z': normal(batch, dim, length) if with_z else None,
        'delta_bias': uniform(dim, low=0.0, high=0.1) if with_bias else None,
    }


def given_tensors(inputs: Dict[str, Optional[torch.Tensor]]) -> List[str]:
    """Return the names of the inputs that are not None."""
    return [name for name in INPUT_NAMES if inputs[name] is not None]


def require_grad(inputs: Dict[str, Optional[torch.Tensor]]) -> None:
    """Make every given input a leaf that requires gradients."""
    for name in given_tensors(inputs):
        inputs[name] = inputs[name].detach().requires_grad_(True)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Return ||actual - expected|| / ||expected|| in float64."""
    difference = (actual.double() - expected.double()).norm()
    return (difference / expected.double().norm().clamp_min(1e-30)).item()


def scan_and_grads(scan_fn, inputs: Dict[str, Optional[torch.Tensor]],
                   delta_softplus: bool, grad_seed: int = 1, **kwargs):
    """Run ``scan_fn`` and backpropagate a fixed random output gradient.

    Returns:
        A tuple of the output and a dict of input gradients by name.
    """
    out = scan_fn(**inputs, delta_softplus=delta_softplus, **kwargs)
    generator = torch.Generator().manual_seed(grad_seed)
    grad_out = torch.randn(out.shape, generator=generator).to(out.dtype)

    names = given_tensors(inputs)
    grads = torch.autograd.grad(out, [inputs[name] for name in names],
                                grad_out)
    return out, dict(zip(names, grads))


@pytest.mark.parametrize('case', list(OPTION_CASES))
@pytest.mark.parametrize('length', [1, 2, 197, 1025, 4200])
def test_torch_scan_matches_reference(length: int, case: str) -> None:
    options = dict(OPTION_CASES[case])
    delta_softplus = options.pop('delta_softplus', False)
    inputs = make_inputs(length=length, delta_softplus=delta_softplus,
                         **options)
    require_grad(inputs)

    out, grads = scan_and_grads(selective_scan, inputs, delta_softplus,
                                backend='torch')
    ref_out, ref_grads = scan_and_grads(selective_scan_ref, inputs,
                                        delta_softplus)

    assert relative_error(out, ref_out) < FLOAT32_RTOL
    for name, ref_grad in ref_grads.items():
        error = relative_error(grads[name], ref_grad)
        assert error < FLOAT32_RTOL, f'gradient of {name}: {error:.2e}'


@pytest.mark.parametrize('case', ['none', 'all'])
def test_torch_scan_gradcheck(case: str) -> None:
    options = dict(OPTION_CASES[case])
    delta_softplus = options.pop('delta_softplus', False)
    inputs = make_inputs(batch=2, dim=3, state=2, length=6,
                         delta_softplus=delta_softplus, dtype=torch.float64,
                         **options)
    require_grad(inputs)
    names = given_tensors(inputs)

    def scan(*tensors: torch.Tensor) -> torch.Tensor:
        return SelectiveScanFunction.apply(
            *[dict(zip(names, tensors)).get(name) for name in INPUT_NAMES],
            delta_softplus, False)[0]

    assert torch.autograd.gradcheck(scan, [inputs[name] for name in names])


def test_torch_scan_gradcheck_last_state() -> None:
    inputs = make_inputs(batch=2, dim=3, state=2, length=5, with_D=True,
                         with_z=True, with_bias=True, delta_softplus=True,
                         dtype=torch.float64)
    require_grad(inputs)

    def scan(*tensors: torch.Tensor):
        return SelectiveScanFunction.apply(*tensors, True, True)

    assert torch.autograd.gradcheck(
        scan, [inputs[name] for name in INPUT_NAMES])


def test_torch_scan_gradcheck_across_chunks(monkeypatch) -> None:
    # Chunks of 2 positions split length 5 into three chunks, so the
    # gradient must cross two chunk boundaries and a chunk of length 1.
    monkeypatch.setattr(scan_module, 'MIN_CHUNK_LENGTH', 2)
    monkeypatch.setattr(scan_module, 'MAX_CHUNK_LENGTH', 2)
    inputs = make_inputs(batch=2, dim=3, state=2, length=5, with_D=True,
                         with_z=True, with_bias=True, delta_softplus=True,
                         dtype=torch.float64)
    require_grad(inputs)

    def scan(*tensors: torch.Tensor):
        return SelectiveScanFunction.apply(*tensors, True, True)

    assert torch.autograd.gradcheck(
        scan, [inputs[name] for name in INPUT_NAMES])


@pytest.mark.parametrize('chunk_length', [1, 3, 8])
def test_torch_scan_chunk_lengths_match_reference(monkeypatch,
                                                   chunk_length: int) -> None:
    monkeypatch.setattr(scan_module, 'MIN_CHUNK_LENGTH', chunk_length)
    monkeypatch.setattr(scan_module, 'MAX_CHUNK_LENGTH', chunk_length)
    inputs = make_inputs(length=29, with_D=True, with_z=True,
                         with_bias=True, delta_softplus=True)
    require_grad(inputs)

    out, grads = scan_and_grads(selective_scan, inputs, True,
                                backend='torch')
    ref_out, ref_grads = scan_and_grads(selective_scan_ref, inputs, True)

    assert relative_error(out, ref_out) < FLOAT32_RTOL
    for name, ref_grad in ref_grads.items():
        error = relative_error(grads[name], ref_grad)
        assert error < FLOAT32_RTOL, f'gradient of {name}: {error:.2e}'


def test_torch_scan_long_sequence_finite() -> None:
    batch, dim, state, length = 1, 4, 16, 8192
    inputs = make_inputs(batch=batch, dim=dim, state=state, length=length,
                         with_D=True, with_z=True)
    # A spans -1e-3 to -16 and delta spans 1e-3 to 1: the decays range
    # from about 1 (long memory) to exp(-16) (immediate forgetting).
    a_log = torch.linspace(-7.0, 2.7726, dim * state).reshape(dim, state)
    inputs['A'] = -torch.exp(a_log)
    inputs['delta'] = torch.linspace(1e-3, 1.0, length).expand(
        batch, dim, length).contiguous()
    require_grad(inputs)

    out, grads = scan_and_grads(selective_scan, inputs, False,
                                backend='torch')

    assert inputs['A'].min().item() <= -15.99
    assert torch.isfinite(out).all()
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), f'gradient of {name}'


def test_torch_scan_autocast_bf16() -> None:
    inputs = make_inputs(length=64, with_D=True, with_z=True,
                         with_bias=True, delta_softplus=True)
    for name in ('u', 'delta', 'B', 'C', 'z'):
        inputs[name] = inputs[name].bfloat16()
    require_grad(inputs)

    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = selective_scan(**inputs, delta_softplus=True, backend='torch')
    out.float().square().sum().backward()
    expected = selective_scan_ref(
        **{name: None if tensor is None else tensor.detach().float()
           for name, tensor in inputs.items()},
        delta_softplus=True)

    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    # Both compute in float32 from the same bfloat16 inputs, so the final
    # rounding to bfloat16 (relative error at most 2**-9 per element)
    # dominates the difference.
    assert relative_error(out, expected) < 2**-8
    for name in given_tensors(inputs):
        grad = inputs[name].grad
        assert grad is not None, f'missing gradient of {name}'
        assert grad.dtype == inputs[name].dtype, f'dtype of {name} grad'
        assert torch.isfinite(grad).all(), f'gradient of {name}'


def test_torch_scan_float32_under_autocast() -> None:
    inputs = make_inputs(length=8, with_D=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = selective_scan(**inputs, backend='torch')
    expected = selective_scan_ref(**inputs)

    assert out.dtype == torch.float32
    assert relative_error(out, expected) < FLOAT32_RTOL


def test_torch_scan_last_state_matches_reference() -> None:
    inputs = make_inputs(length=37, with_D=True, with_z=True,
                         with_bias=True, delta_softplus=True)
    require_grad(inputs)
    names = given_tensors(inputs)
    leaves = [inputs[name] for name in names]

    out, last = selective_scan(**inputs, delta_softplus=True,
                               return_last_state=True, backend='torch')
    ref_out, ref_last = selective_scan_ref(**inputs, delta_softplus=True,
                                           return_last_state=True)
    grads = torch.autograd.grad(out.sum() + last.square().sum(), leaves)
    ref_grads = torch.autograd.grad(
        ref_out.sum() + ref_last.square().sum(), leaves)

    assert last.shape == (2, 4, 4)
    assert last.dtype == torch.float32
    assert relative_error(out, ref_out) < FLOAT32_RTOL
    assert relative_error(last, ref_last) < FLOAT32_RTOL
    for name, grad, ref_grad in zip(names, grads, ref_grads):
        error = relative_error(grad, ref_grad)
        assert error < FLOAT32_RTOL, f'gradient of {name}: {error:.2e}'


def test_torch_scan_partial_requires_grad() -> None:
    inputs = make_inputs(length=20, with_D=True, with_z=True)
    inputs['u'].requires_grad_(True)
    inputs['A'].requires_grad_(True)

    out = selective_scan(**inputs, backend='torch')
    grad_u, grad_A = torch.autograd.grad(out.sum(), [inputs['u'],
                                                     inputs['A']])
    ref_out = selective_scan_ref(**inputs)
    ref_grad_u, ref_grad_A = torch.autograd.grad(
        ref_out.sum(), [inputs['u'], inputs['A']])

    assert relative_error(grad_u, ref_grad_u) < FLOAT32_RTOL
    assert relative_error(grad_A, ref_grad_A) < FLOAT32_RTOL


def test_torch_scan_no_grad_matches_graph() -> None:
    inputs = make_inputs(length=50, with_D=True, with_z=True,
                         with_bias=True, delta_softplus=True)
    with torch.no_grad():
        no_grad_out, no_grad_last = selective_scan(
            **inputs, delta_softplus=True, return_last_state=True,
            backend='torch')
    require_grad(inputs)
    out, last = selective_scan(**inputs, delta_softplus=True,
                               return_last_state=True, backend='torch')

    assert no_grad_out.grad_fn is None
    assert torch.equal(no_grad_out, out.detach())
    assert torch.equal(no_grad_last, last.detach())


def test_torch_scan_float64_dtype() -> None:
    inputs = make_inputs(length=10, dtype=torch.float64)
    out, last = selective_scan(**inputs, return_last_state=True,
                               backend='torch')

    assert out.dtype == torch.float64
    assert last.dtype == torch.float64


def test_torch_scan_inputs_unchanged() -> None:
    inputs = make_inputs(length=30, with_D=True, with_z=True,
                         with_bias=True, delta_softplus=True)
    require_grad(inputs)
    originals = {name: inputs[name].detach().clone()
                 for name in given_tensors(inputs)}

    out, last = selective_scan(**inputs, delta_softplus=True,
                               return_last_state=True, backend='torch')
    (out.sum() + last.sum()).backward()

    for name, original in originals.items():
        assert torch.equal(inputs[name].detach(), original), name


def test_torch_scan_noncontiguous_inputs() -> None:
    inputs = make_inputs(length=24, with_D=True, with_z=True)
    expected = selective_scan_ref(**inputs)
    # Transposed copies have the same values but length-major strides, as
    # B and C do when sliced from a (batch, length, channels) projection.
    for name in ('u', 'delta', 'B', 'C', 'z'):
        inputs[name] = inputs[name].transpose(1, 2).contiguous().transpose(
            1, 2)

    out = selective_scan(**inputs, backend='torch')

    assert relative_error(out, expected) < FLOAT32_RTOL


def test_backend_forced_cuda_on_cpu_raises() -> None:
    inputs = make_inputs(length=4)
    with pytest.raises(RuntimeError, match='pip install mamba-ssm') as info:
        selective_scan(**inputs, backend='cuda')

    assert 'CUDA device' in str(info.value)


def test_backend_cuda_without_mamba_raises(monkeypatch) -> None:
    monkeypatch.setattr(scan_module, 'selective_scan_fn', None)
    with pytest.raises(RuntimeError, match='mamba_ssm is not installed'):
        get_scan_backend('cuda', torch.device('cuda'))


def test_backend_auto_selection(monkeypatch) -> None:
    monkeypatch.delenv('MMSCOPE_SCAN_BACKEND', raising=False)
    monkeypatch.setattr(scan_module, 'selective_scan_fn', object())

    assert get_scan_backend(None, torch.device('cuda')) == 'cuda'
    assert get_scan_backend(None, torch.device('cpu')) == 'torch'
    assert get_scan_backend('torch', torch.device('cuda')) == 'torch'


def test_backend_float64_uses_torch(monkeypatch) -> None:
    monkeypatch.setattr(scan_module, 'selective_scan_fn', object())
    cuda = torch.device('cuda')

    assert get_scan_backend('auto', cuda, torch.float64) == 'torch'
    with pytest.raises(RuntimeError, match='dtype torch.float64'):
        get_scan_backend('cuda', cuda, torch.float64)


def test_backend_auto_without_mamba(monkeypatch) -> None:
    monkeypatch.setattr(scan_module, 'selective_scan_fn', None)

    assert get_scan_backend('auto', torch.device('cuda')) == 'torch'


def test_backend_env_var_honoured(monkeypatch) -> None:
    monkeypatch.setattr(scan_module, 'selective_scan_fn', object())
    monkeypatch.setenv('MMSCOPE_SCAN_BACKEND', 'torch')
    assert get_scan_backend(None, torch.device('cuda')) == 'torch'

    monkeypatch.setenv('MMSCOPE_SCAN_BACKEND', 'cuda')
    with pytest.raises(RuntimeError, match='pip install mamba-ssm'):
        selective_scan(**make_inputs(length=4))


def test_backend_argument_overrides_env(monkeypatch) -> None:
    monkeypatch.setenv('MMSCOPE_SCAN_BACKEND', 'cuda')
    inputs = make_inputs(length=4)

    out = selective_scan(**inputs, backend='torch')

    assert relative_error(out, selective_scan_ref(**inputs)) < FLOAT32_RTOL


def test_backend_invalid_name_raises() -> None:
    with pytest.raises(ValueError, match="'gpu'.*'auto', 'torch', 'cuda'"):
        selective_scan(**make_inputs(length=4), backend='gpu')


def test_backend_invalid_env_var_raises(monkeypatch) -> None:
    monkeypatch.setenv('MMSCOPE_SCAN_BACKEND', 'triton')
    with pytest.raises(ValueError, match="'triton'.*MMSCOPE_SCAN_BACKEND"):
        get_scan_backend()


@pytest.mark.parametrize('name, bad_shape, message', [
    ('B', (2, 4, 7), r'B must have shape \(batch, state, length\) = '
     r'\(2, 4, 8\), got \(2, 4, 7\)'),
    ('C', (2, 3, 8), r'C must have shape \(batch, state, length\)'),
    ('delta', (2, 4, 9), r'delta must have shape \(batch, dim, length\)'),
    ('z', (1, 4, 8), r'z must have shape \(batch, dim, length\)'),
    ('D', (5, ), r'D must have shape \(dim,\) = \(4,\), got \(5,\)'),
    ('delta_bias', (4, 1), r'delta_bias must have shape \(dim,\)'),
    ('A', (4, ), r'A must have shape \(dim, state\)'),
    ('u', (4, 8), r'u must have shape \(batch, dim, length\)'),
])
def test_shape_error_names_tensor(name: str, bad_shape: tuple,
                                  message: str) -> None:
    inputs = make_inputs(length=8, with_D=True, with_z=True, with_bias=True)
    inputs[name] = torch.zeros(bad_shape)

    with pytest.raises(ValueError, match=message):
        selective_scan(**inputs, backend='torch')


def test_integer_input_raises() -> None:
    inputs = make_inputs(length=8)
    inputs['u'] = torch.zeros(2, 4, 8, dtype=torch.int64)

    with pytest.raises(ValueError, match='u must be a real floating point'):
        selective_scan(**inputs, backend='torch')


@pytest.mark.skipif(
    not torch.cuda.is_available() or scan_module.selective_scan_fn is None,
    reason='needs a CUDA device and mamba_ssm')
def test_cuda_backend_matches_torch_backend() -> None:
    inputs = make_inputs(batch=2, dim=64, state=16, length=300, with_D=True,
                         with_z=True, with_bias=True, delta_softplus=True)
    inputs = {name: None if tensor is None else tensor.cuda()
              for name, tensor in inputs.items()}
    require_grad(inputs)

    out, grads = scan_and_grads(selective_scan, inputs, True,
                                backend='cuda')
    torch_out, torch_grads = scan_and_grads(selective_scan, inputs, True,
                                            backend='torch')

    assert relative_error(out, torch_out) < 1e-3
    for name, torch_grad in torch_grads.items():
        error = relative_error(grads[name], torch_grad)
        assert error < 1e-3, f'gradient of {name}: {error:.2e}'
