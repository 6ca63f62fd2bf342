"""Residual block of Vision Mamba: pre-norm, mixer, float32 residual stream."""
from typing import Optional, Tuple

import torch
from mmcv.cnn.bricks import DropPath
from torch import nn

from .bimamba_mixer import BiMambaMixer
from .precision import accumulation_dtype
from .rms_norm import RMSNorm


class VimBlock(nn.Module):
    """One pre-norm Vim layer: ``x + drop_path(mixer(rms_norm(x)))``.

    The residual stream ``x`` is kept in float32 for float32 and
    half-precision inputs, as Vim does with ``residual_in_fp32``, and in
    float64 for float64 inputs. This is the same recurrence as
    Vim's (hidden, residual) formulation, written on the sum.

    Args:
        embed_dims: Token width C.
        state_size: SSM state size N.
        expand: Inner width factor of the mixer.
        drop_path: Stochastic depth rate of the mixer branch.
        num_layers: Network depth, for the mixer's output projection scaling.
        norm_eps: Epsilon of the RMSNorm.
    """

    def __init__(self,
                 embed_dims: int,
                 state_size: int = 16,
                 expand: int = 2,
                 drop_path: float = 0.0,
                 num_layers: Optional[int] = None,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = RMSNorm(embed_dims, eps=norm_eps)
        self.mixer = BiMambaMixer(
            embed_dims, state_size=state_size, expand=expand,
            num_layers=num_layers)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        return_pre_proj: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Apply the layer.

        Args:
            x: Token features of shape (batch, length, C).
            return_pre_proj: Also return the mixer output before its output
                projection.

        Returns:
            The updated features in float32 (float64 for float64 inputs)
            and the pre-projection output of
            shape (batch, length, inner), or ``None``.
        """
        residual = x.to(accumulation_dtype(x.dtype))
        normed = self.norm(residual.to(self.norm.weight.dtype))
        if return_pre_proj:
            mixed, pre_proj = self.mixer(normed, return_pre_proj=True)
        else:
            mixed, pre_proj = self.mixer(normed), None
        return residual + self.drop_path(mixed).to(residual.dtype), pre_proj
