"""Multi-scale maps from single-stride token maps of a plain backbone."""
import math
from typing import List, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from torch import nn


def _build_branch(embed_dims: int, scale: float, norm_cfg: dict) -> nn.Module:
    """Build the layers that rescale a map by ``scale`` (a power of two).

    Upsampling uses 2x2 transposed convolutions with stride 2, with a norm
    layer and GELU between two of them; downsampling uses 2x2 max-pooling.
    """
    steps = int(round(math.log2(scale)))
    if steps == 0:
        return nn.Identity()
    if steps < 0:
        pools = [
            nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
            for _ in range(-steps)
        ]
        return nn.Sequential(*pools)

    layers: List[nn.Module] = []
    for step in range(steps):
        if step > 0:
            layers.append(build_norm_layer(norm_cfg, embed_dims)[1])
            layers.append(nn.GELU())
        layers.append(
            nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class MultiScaleMaps(nn.Module):
    """Turn stride-``patch_size`` maps into maps at the requested strides.

    Args:
        embed_dims: Channels of every map.
        patch_size: Stride of the input maps.
        out_strides: Output stride of each map, each ``patch_size`` times a
            power of two (for example 4, 8, 16, 32 for patch size 16).
        norm_cfg: Config of the norm layers between transposed convolutions.
    """

    def __init__(self, embed_dims: int, patch_size: int,
                 out_strides: Sequence[int], norm_cfg: dict) -> None:
        super().__init__()
        self.out_strides = tuple(out_strides)
        branches = []
        for stride in self.out_strides:
            scale = patch_size / stride if stride > 0 else 0
            if scale <= 0 or not math.log2(scale).is_integer():
                raise ValueError(
                    f'Invalid output stride {stride}: it must be the patch '
                    f'size {patch_size} times a power of two, such as '
                    f'{patch_size // 4}, {patch_size} or {patch_size * 2}.')
            branches.append(_build_branch(embed_dims, scale, dict(norm_cfg)))
        self.branches = nn.ModuleList(branches)

    def forward(self, maps: Sequence[torch.Tensor],
                input_shape: Tuple[int, int]) -> Tuple[torch.Tensor, ...]:
        """Rescale each map and crop the padding away.

        Args:
            maps: One (batch, C, Hp, Wp) map per output stride, in order.
            input_shape: Unpadded image (height, width); the map at stride
                ``s`` is cropped to ``ceil(height / s) x ceil(width / s)``.

        Returns:
            Tuple of NCHW maps, one per output stride.
        """
        if len(maps) != len(self.branches):
            raise ValueError(f'Expected {len(self.branches)} maps, one per '
                             f'output stride, got {len(maps)}.')
        height, width = input_shape
        outs = []
        for feature, branch, stride in zip(maps, self.branches,
                                           self.out_strides):
            feature = branch(feature)
            out_h = math.ceil(height / stride)
            out_w = math.ceil(width / stride)
            outs.append(feature[:, :, :out_h, :out_w].contiguous())
        return tuple(outs)
