"""Resampling of absolute position embeddings between token grids."""
from typing import Tuple

import torch
import torch.nn.functional as F

from .precision import accumulation_dtype


def resample_pos_embed(pos_embed: torch.Tensor,
                       src_shape: Tuple[int, int],
                       dst_shape: Tuple[int, int],
                       mode: str = 'bicubic') -> torch.Tensor:
    """Resample a grid of position embeddings to another grid size.

    Args:
        pos_embed: Embeddings of shape (1, src_h * src_w, C) in raster order,
            without class-token entries.
        src_shape: Stored grid (height, width).
        dst_shape: Requested grid (height, width); may be non-square.
        mode: Interpolation mode of ``torch.nn.functional.interpolate``.

    Returns:
        Tensor of shape (1, dst_h * dst_w, C) with the input dtype. The input
        itself is returned when the two grids are equal.

    Raises:
        ValueError: If ``pos_embed`` does not hold ``src_h * src_w`` entries.
    """
    src_h, src_w = src_shape
    dst_h, dst_w = dst_shape
    if pos_embed.dim() != 3 or pos_embed.shape[1] != src_h * src_w:
        raise ValueError(
            f'pos_embed must have shape (1, {src_h * src_w}, C) for a '
            f'{src_h}x{src_w} grid, got {tuple(pos_embed.shape)}.')
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed

    channels = pos_embed.shape[2]
    grid = pos_embed.reshape(1, src_h, src_w, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid.to(accumulation_dtype(grid.dtype)), size=(dst_h, dst_w),
        mode=mode, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, dst_h * dst_w, channels)
    return grid.to(pos_embed.dtype)
