"""Patch embedding shared by the fine and the coarse stage."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping patches and project each one.

    The input is padded on the right and bottom with zeros to a multiple of
    the patch size, so any height and width is accepted.

    Args:
        in_channels: Image channels.
        embed_dims: Token width C.
        patch_size: Side of a square patch in pixels.
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 192,
                 patch_size: int = 16) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Embed an image batch.

        Args:
            x: Images of shape (batch, in_channels, H, W).

        Returns:
            Tokens of shape (batch, Hp * Wp, C) in raster order and the grid
            ``(Hp, Wp)`` with ``Hp = ceil(H / patch_size)``.
        """
        height, width = x.shape[-2:]
        pad_h = (-height) % self.patch_size
        pad_w = (-width) % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))

        x = self.proj(x)
        grid = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), grid
