"""Tests of the depthwise causal 1D convolution."""
import importlib
from typing import Optional

import pytest
import torch
import torch.nn.functional as F

from mmscope.ops import causal_conv1d, get_conv_backend

conv_module = importlib.import_module('mmscope.ops.causal_conv1d')


def loop_causal_conv1d(x: torch.Tensor, weight: torch.Tensor,
                       bias: Optional[torch.Tensor],
                       activation: Optional[str]) -> torch.Tensor:
    """Compute the causal convolution one output element at a time.

    ``out[b, c, t] = bias[c] + sum_k weight[c, k] * x[b, c, t - width + 1 +
    k]``, where positions before 0 contribute zero.
    """
    batch, dim, length = x.shape
    width = weight.shape[-1]
    weight = weight.reshape(dim, width)
    out = torch.zeros_like(x)
    for b in range(batch):
        for c in range(dim):
            for t in range(length):
                total = bias[c].item() if bias is not None else 0.0
                for k in range(width):
                    source = t - width + 1 + k
                    if source >= 0:
                        total += weight[c, k].item() * x[b, c, source].item()
                out[b, c, t] = total
    if activation is not None:
        out = F.silu(out)
    return out


def make_conv_inputs(dim: int = 3, width: int = 4, length: int = 9,
                     seed: int = 0):
    """Return random x of shape (2, dim, length), weight and bias."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, dim, length, generator=generator)
    weight = torch.randn(dim, width, generator=generator)
    bias = torch.randn(dim, generator=generator)
    return x, weight, bias


@pytest.mark.parametrize('activation', [None, 'silu'])
@pytest.mark.parametrize('with_bias', [False, True])
@pytest.mark.parametrize('width', [1, 2, 4, 5])
def test_conv_matches_loop(width: int, with_bias: bool,
                           activation: Optional[str]) -> None:
    x, weight, bias = make_conv_inputs(width=width)
    bias = bias if with_bias else None

    out = causal_conv1d(x, weight, bias, activation=activation,
                        backend='torch')
    expected = loop_causal_conv1d(x, weight, bias, activation)

    # Sums of at most 5 float32 products. The loop accumulates in float64
    # Python floats, so 1e-5 covers the float32 rounding.
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_conv_is_causal() -> None:
    x, weight, bias = make_conv_inputs(width=4, length=12)
    changed = x.clone()
    changed[:, :, 6] += 1.0

    out = causal_conv1d(x, weight, bias)
    changed_out = causal_conv1d(changed, weight, bias)

    assert torch.equal(out[:, :, :6], changed_out[:, :, :6])
    assert not torch.allclose(out[:, :, 6], changed_out[:, :, 6])


def test_conv_weight_layouts_agree() -> None:
    x, weight, bias = make_conv_inputs()

    out_2d = causal_conv1d(x, weight, bias)
    out_3d = causal_conv1d(x, weight.unsqueeze(1), bias)

    assert torch.equal(out_2d, out_3d)


def test_conv_matches_nn_conv1d() -> None:
    dim, width, length = 3, 4, 9
    conv = torch.nn.Conv1d(dim, dim, width, groups=dim, padding=width - 1)
    x = torch.randn(2, dim, length)

    out = causal_conv1d(x, conv.weight, conv.bias)
    expected = conv(x)[:, :, :length]

    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_conv_silu_activation() -> None:
    x, weight, bias = make_conv_inputs()

    out = causal_conv1d(x, weight, bias, activation='silu')
    swish = causal_conv1d(x, weight, bias, activation='swish')
    linear = causal_conv1d(x, weight, bias)

    assert torch.equal(out, F.silu(linear))
    assert torch.equal(swish, out)


def test_conv_gradients_flow() -> None:
    x, weight, bias = make_conv_inputs()
    for tensor in (x, weight, bias):
        tensor.requires_grad_(True)

    causal_conv1d(x, weight, bias, activation='silu').sum().backward()

    assert x.grad is not None
    assert weight.grad.shape == weight.shape
    assert bias.grad.shape == bias.shape


def test_conv_gradcheck() -> None:
    x, weight, bias = make_conv_inputs(dim=2, width=3, length=5)
    tensors = [t.double().requires_grad_(True) for t in (x, weight, bias)]

    def conv(x: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor) -> torch.Tensor:
        return causal_conv1d(x, weight, bias, activation='silu')

    assert torch.autograd.gradcheck(conv, tensors)


def test_conv_inputs_unchanged() -> None:
    x, weight, bias = make_conv_inputs()
    originals = [t.clone() for t in (x, weight, bias)]

    causal_conv1d(x, weight, bias, activation='silu')

    for tensor, original in zip((x, weight, bias), originals):
        assert torch.equal(tensor, original)


def test_conv_bfloat16_input_float32_weight() -> None:
    x, weight, bias = make_conv_inputs()

    out = causal_conv1d(x.bfloat16(), weight, bias)

    assert out.dtype == torch.bfloat16


def test_conv_invalid_activation_raises() -> None:
    x, weight, bias = make_conv_inputs()
    with pytest.raises(ValueError, match="Invalid activation 'relu'"):
        causal_conv1d(x, weight, bias, activation='relu')


@pytest.mark.parametrize('shape', [(4, 4), (3, 2, 4), (3, )])
def test_conv_bad_weight_shape_raises(shape: tuple) -> None:
    x, _, bias = make_conv_inputs(dim=3)
    with pytest.raises(ValueError, match=r'weight must have shape'):
        causal_conv1d(x, torch.zeros(shape), bias)


def test_conv_bad_bias_shape_raises() -> None:
    x, weight, _ = make_conv_inputs(dim=3)
    with pytest.raises(ValueError, match=r'bias must have shape \(dim,\)'):
        causal_conv1d(x, weight, torch.zeros(4))


def test_conv_bad_input_rank_raises() -> None:
    _, weight, bias = make_conv_inputs(dim=3)
    with pytest.raises(ValueError, match=r'x must have shape'):
        causal_conv1d(torch.zeros(3, 9), weight, bias)


def test_conv_backend_forced_cuda_on_cpu_raises() -> None:
    x, weight, bias = make_conv_inputs()
    with pytest.raises(RuntimeError,
                       match='pip install mamba-ssm causal-conv1d'):
        causal_conv1d(x, weight, bias, backend='cuda')


def test_conv_backend_cuda_not_installed(monkeypatch) -> None:
    monkeypatch.setattr(conv_module, 'causal_conv1d_fn', None)
    with pytest.raises(RuntimeError, match='causal_conv1d is not installed'):
        get_conv_backend('cuda', torch.device('cuda'))


def test_conv_backend_auto_selection(monkeypatch) -> None:
    monkeypatch.delenv('MMSCOPE_CONV_BACKEND', raising=False)
    monkeypatch.setattr(conv_module, 'causal_conv1d_fn', object())
    cuda = torch.device('cuda')

    assert get_conv_backend(None, cuda, width=4) == 'cuda'
    assert get_conv_backend(None, cuda, width=5) == 'torch'
    assert get_conv_backend(None, torch.device('cpu'), width=4) == 'torch'
    assert get_conv_backend(None, cuda, 4, (torch.bfloat16,)) == 'cuda'
    assert get_conv_backend(None, cuda, 4, (torch.float64,)) == 'torch'
    assert get_conv_backend(
        None, cuda, 4, (torch.float32, torch.float64)) == 'torch'


def test_conv_backend_cuda_dtype_raises(monkeypatch) -> None:
    monkeypatch.setattr(conv_module, 'causal_conv1d_fn', object())
    with pytest.raises(RuntimeError, match='dtype torch.float64'):
        get_conv_backend('cuda', torch.device('cuda'), 4, (torch.float64,))


def test_conv_backend_cuda_width_raises(monkeypatch) -> None:
    monkeypatch.setattr(conv_module, 'causal_conv1d_fn', object())
    with pytest.raises(ValueError, match='widths 2 to 4, got 5'):
        get_conv_backend('cuda', torch.device('cuda'), width=5)


def test_conv_backend_env_var_honoured(monkeypatch) -> None:
    monkeypatch.setattr(conv_module, 'causal_conv1d_fn', object())
    monkeypatch.setenv('MMSCOPE_CONV_BACKEND', 'torch')
    assert get_conv_backend(None, torch.device('cuda'), width=4) == 'torch'

    monkeypatch.setenv('MMSCOPE_CONV_BACKEND', 'cuda')
    x, weight, bias = make_conv_inputs()
    with pytest.raises(RuntimeError, match='CUDA device'):
        causal_conv1d(x, weight, bias)


def test_conv_backend_invalid_name_raises() -> None:
    x, weight, bias = make_conv_inputs()
    with pytest.raises(ValueError, match="'gpu'.*'auto', 'torch', 'cuda'"):
        causal_conv1d(x, weight, bias, backend='gpu')


@pytest.mark.skipif(
    not torch.cuda.is_available() or conv_module.causal_conv1d_fn is None,
    reason='needs a CUDA device and causal_conv1d')
def test_conv_cuda_matches_torch() -> None:
    x, weight, bias = (t.cuda() for t in make_conv_inputs(dim=64, length=300))

    out = causal_conv1d(x, weight, bias, activation='silu', backend='cuda')
    expected = causal_conv1d(x, weight, bias, activation='silu',
                             backend='torch')

    assert torch.allclose(out, expected, rtol=1e-3, atol=1e-4)
