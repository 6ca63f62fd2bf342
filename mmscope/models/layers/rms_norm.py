"""Root-mean-square layer normalisation as used by Vision Mamba."""
import torch
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension, computed in float32.

    ``y = x / sqrt(mean(x ** 2) + eps) * weight``. The statistics are taken in
    float32 whatever the input dtype, and the result has the input dtype.

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
        x_float = x.float()
        scale = torch.rsqrt(x_float.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x_float * scale * self.weight.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f'{self.weight.numel()}, eps={self.eps}'
