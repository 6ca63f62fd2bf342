"""Analytic compute counts of Vision Mamba and MambaScope backbones.

Convention: one multiply-accumulate (MAC) counts as one operation, as in
MMEngine's and fvcore's FLOP counters, and "GFLOPs" means 1e9 MACs. Counted:
patch embeddings, linear projections, convolutions (including the transposed
convolutions of the multi-scale layers) and the selective scan. Not counted:
normalisations, activations, additions of embeddings, pooling, resizing and
indexing, which cost no multiply-accumulates or a negligible number of them.
Biases are not counted, as in MMEngine's counter.
"""
from typing import Sequence, Tuple


def selective_scan_macs(length: int, channels: int, state_size: int) -> int:
    """Count the MACs of one selective scan with ``D`` and gating.

    Per token, channel and state: the discretisation ``delta * A``, the input
    term ``(delta * u) * B``, the state update ``dA * x + input`` and the
    read-out ``C * x`` (4 MACs). Per token and channel: ``delta * u``, the
    skip ``D * u`` and the gate ``y * silu(z)`` (3 MACs).
    """
    return 4 * length * channels * state_size + 3 * length * channels


def vim_layer_macs(num_tokens: int, embed_dims: int, inner_dims: int,
                   state_size: int, dt_rank: int, conv_kernel: int = 4) -> int:
    """Count the MACs of one bidirectional Vim layer on ``num_tokens`` tokens.

    The input projection and the output projection run once; each of the
    two directions has its causal convolution, ``x_proj``, ``dt_proj`` and
    selective scan.
    """
    in_proj = num_tokens * embed_dims * 2 * inner_dims
    out_proj = num_tokens * inner_dims * embed_dims
    conv = num_tokens * inner_dims * conv_kernel
    x_proj = num_tokens * inner_dims * (dt_rank + 2 * state_size)
    dt_proj = num_tokens * dt_rank * inner_dims
    scan = selective_scan_macs(num_tokens, inner_dims, state_size)
    return in_proj + out_proj + 2 * (conv + x_proj + dt_proj + scan)


def patch_embed_macs(num_tokens: int, in_channels: int, embed_dims: int,
                     patch_size: int) -> int:
    """Count the MACs of the patch-embedding convolution."""
    return num_tokens * embed_dims * in_channels * patch_size * patch_size


def multi_scale_macs(grid: Tuple[int, int], embed_dims: int,
                     out_strides: Sequence[int], patch_size: int) -> int:
    """Count the MACs of the transposed convolutions of the multi-scale layers.

    A 2x2 transposed convolution with stride 2 costs ``4 * C * C`` MACs per
    input position. Identity and max-pooling branches cost none.
    """
    height, width = grid
    total = 0
    for stride in out_strides:
        scale = patch_size // stride if stride < patch_size else 1
        positions = height * width
        while scale > 1:
            total += positions * 4 * embed_dims * embed_dims
            positions *= 4
            scale //= 2
    return total
