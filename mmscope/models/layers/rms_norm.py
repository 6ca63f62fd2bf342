"""Root-mean-square layer normalisation as used by Vision Mamba."""
import torch
from torch import nn

from .precision import accumulation_dtype


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension, computed in float32 or float64.

    ``y = x / sqrt(mean(x ** 2) + eps) * weight``. The statistics are taken in
    float32, or in float64 for float64 inputs, and the result has the input
    dtype.

    Args:
        num_features: Size of the last dimension.
        eps: Added to the mean square before the square root.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape (..., num_features)."""
        dtype = accumulation_dtype(x.dtype)
        x_wide = x.to(dtype)
        scale = torch.rsqrt(x_wide.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x_wide * scale * self.weight.to(dtype)).to(x.dtype)

    def extra_repr(self) -> str:
        return f'{self.weight.numel()}, eps={self.eps}'
