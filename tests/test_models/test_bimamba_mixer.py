import math

import pytest
import torch
import torch.nn.functional as F

from mmscope.models.layers import BiMambaMixer, VimBlock


def _vim_v2_direction(x, z, conv_w, conv_b, x_proj_w, dt_w, dt_b, a_log, d):
    """One direction of the Vim v2 mixer, token by token, for one sequence.

    x, z: (length, inner). Returns the gated output (length, inner).
    """
    length, inner = x.shape
    kernel = conv_w.shape[-1]
    dt_rank = dt_w.shape[1]
    state = a_log.shape[1]
    a = -torch.exp(a_log)
    h = torch.zeros(inner, state, dtype=x.dtype)
    outputs = []
    for t in range(length):
        conv = conv_b.clone()
        for tap in range(kernel):
            source = t - (kernel - 1) + tap
            if source >= 0:
                conv = conv + conv_w[:, 0, tap] * x[source]
        u = conv * torch.sigmoid(conv)

        projected = x_proj_w @ u
        dt_low = projected[:dt_rank]
        b = projected[dt_rank:dt_rank + state]
        c = projected[dt_rank + state:]
        dt = F.softplus(dt_w @ dt_low + dt_b)

        h = torch.exp(dt[:, None] * a) * h + (dt * u)[:, None] * b[None, :]
        y = h @ c + d * u
        outputs.append(y * z[t] * torch.sigmoid(z[t]))
    return torch.stack(outputs)


def _vim_v2_reference(mixer, tokens):
    """Apply the Vim v2 equations with the mixer's parameters, per sequence."""
    p = {name: value.double() for name, value in mixer.state_dict().items()}
    inner = mixer.inner_dims
    results = []
    for sequence in tokens.double():
        xz = sequence @ p['in_proj.weight'].T
        x, z = xz[:, :inner], xz[:, inner:]
        forward = _vim_v2_direction(
            x, z, p['conv1d.weight'], p['conv1d.bias'], p['x_proj.weight'],
            p['dt_proj.weight'], p['dt_proj.bias'], p['A_log'], p['D'])
        backward = _vim_v2_direction(
            x.flip(0), z.flip(0), p['conv1d_b.weight'], p['conv1d_b.bias'],
            p['x_proj_b.weight'], p['dt_proj_b.weight'], p['dt_proj_b.bias'],
            p['A_b_log'], p['D_b']).flip(0)
        results.append(((forward + backward) / 2) @ p['out_proj.weight'].T)
    return torch.stack(results)


def _randomised_mixer(embed_dims=16, state_size=4):
    torch.manual_seed(0)
    mixer = BiMambaMixer(embed_dims, state_size=state_size, expand=2)
    with torch.no_grad():
        # Distinct values per branch, so that swapped parameters are caught.
        for name, param in mixer.named_parameters():
            if name in ('A_log', 'A_b_log'):
                param.uniform_(-1.0, 1.5)
            elif name in ('D', 'D_b'):
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0, 0.3)
    return mixer


def test_mixer_parameter_names():
    mixer = BiMambaMixer(192, state_size=16, expand=2)
    shapes = {k: tuple(v.shape) for k, v in mixer.state_dict().items()}
    inner, rank = 384, math.ceil(192 / 16)
    expected = {
        'in_proj.weight': (2 * inner, 192),
        'conv1d.weight': (inner, 1, 4),
        'conv1d.bias': (inner, ),
        'conv1d_b.weight': (inner, 1, 4),
        'conv1d_b.bias': (inner, ),
        'x_proj.weight': (rank + 32, inner),
        'x_proj_b.weight': (rank + 32, inner),
        'dt_proj.weight': (inner, rank),
        'dt_proj.bias': (inner, ),
        'dt_proj_b.weight': (inner, rank),
        'dt_proj_b.bias': (inner, ),
        'A_log': (inner, 16),
        'A_b_log': (inner, 16),
        'D': (inner, ),
        'D_b': (inner, ),
        'out_proj.weight': (192, inner),
    }
    assert shapes == expected


def test_mixer_matches_step_by_step_vim():
    mixer = _randomised_mixer()
    tokens = torch.randn(2, 11, 16)

    out = mixer(tokens)
    expected = _vim_v2_reference(mixer, tokens)

    assert out.shape == (2, 11, 16)
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-5)


def test_float64_mixer_matches_in_float64():
    mixer = _randomised_mixer().double()
    tokens = torch.randn(2, 11, 16, dtype=torch.float64)

    out = mixer(tokens)
    expected = _vim_v2_reference(mixer, tokens)

    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_float64_block_keeps_float64_residual():
    block = VimBlock(16, state_size=4).double()
    tokens = torch.randn(1, 5, 16, dtype=torch.float64)

    out, _ = block(tokens)

    assert out.dtype == torch.float64
    expected = tokens + block.mixer(block.norm(tokens))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_mixer_pre_proj_output():
    mixer = _randomised_mixer()
    tokens = torch.randn(1, 7, 16)

    out, pre_proj = mixer(tokens, return_pre_proj=True)

    assert pre_proj.shape == (1, 7, mixer.inner_dims)
    torch.testing.assert_close(mixer.out_proj(pre_proj), out)
    torch.testing.assert_close(out, mixer(tokens))


def test_mixer_bf16_autocast():
    mixer = _randomised_mixer()
    tokens = torch.randn(2, 33, 16)
    reference = mixer(tokens)

    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = mixer(tokens)

    assert torch.isfinite(out).all()
    error = (out.float() - reference).norm() / reference.norm()
    # bf16 keeps 8 mantissa bits; a few matmuls stay well within 5%.
    assert error < 0.05


def test_mixer_backward_reaches_all_parameters():
    mixer = _randomised_mixer()
    tokens = torch.randn(2, 9, 16, requires_grad=True)

    mixer(tokens).square().sum().backward()

    for name, param in mixer.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_block_residual_in_float32():
    block = VimBlock(16, state_size=4)
    tokens = torch.randn(1, 5, 16)

    out, pre_proj = block(tokens)

    assert out.dtype == torch.float32
    assert pre_proj is None
    expected = tokens + block.mixer(block.norm(tokens))
    torch.testing.assert_close(out, expected)


def test_block_does_not_modify_input():
    block = VimBlock(16, state_size=4)
    tokens = torch.randn(1, 5, 16)
    original = tokens.clone()

    block(tokens)

    assert torch.equal(tokens, original)


@pytest.mark.parametrize('eps', [1e-5, 1e-6])
def test_rms_norm_formula(eps):
    from mmscope.models.layers import RMSNorm
    norm = RMSNorm(8, eps=eps)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
    x = torch.randn(3, 8)

    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight
    torch.testing.assert_close(norm(x), expected)
