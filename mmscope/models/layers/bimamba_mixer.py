"""Bidirectional Mamba token mixer of Vision Mamba (the "v2" variant)."""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmscope.ops import causal_conv1d, selective_scan

from .precision import accumulation_dtype


def _init_dt_bias(dt_proj: nn.Linear, dt_min: float, dt_max: float,
                  dt_floor: float) -> None:
    """Set ``dt_proj.bias`` so that softplus(bias) is log-uniform in [min, max].

    The step size of a freshly built layer then covers time scales between
    ``dt_min`` and ``dt_max``; the bias is the inverse softplus of that step.
    """
    inner_dims = dt_proj.out_features
    log_dt = torch.rand(inner_dims) * (math.log(dt_max) - math.log(dt_min))
    dt = torch.exp(log_dt + math.log(dt_min)).clamp(min=dt_floor)
    inverse_softplus = dt + torch.log(-torch.expm1(-dt))
    with torch.no_grad():
        dt_proj.bias.copy_(inverse_softplus)


def _s4d_real_a_log(inner_dims: int, state_size: int) -> torch.Tensor:
    """Return log(1..N) for each channel, the S4D-real initialisation of A."""
    a = torch.arange(1, state_size + 1, dtype=torch.float32)
    return torch.log(a).repeat(inner_dims, 1).contiguous()


class BiMambaMixer(nn.Module):
    """Bidirectional selective-state-space mixer with Vim parameter names.

    One input projection gives ``x`` and the gate ``z``. A forward branch and
    a backward branch, each with its own depthwise causal convolution,
    ``x_proj``, ``dt_proj``, ``A_log`` and ``D``, scan the sequence in the two
    directions (the backward branch scans the flipped sequence and its output
    is flipped back). The two gated outputs are averaged and projected back to
    the embedding width by ``out_proj``.

    Args:
        embed_dims: Token width C.
        state_size: SSM state size N per channel.
        expand: Inner width is ``expand * embed_dims``.
        conv_kernel: Width of the depthwise causal convolutions.
        dt_rank: Rank of the step-size projection; ``None`` gives
            ``ceil(embed_dims / 16)`` as in Vim.
        dt_min: Smallest initial step size.
        dt_max: Largest initial step size.
        dt_init_floor: Lower clamp of the initial step size.
        num_layers: Depth of the whole network, used to scale the initial
            ``out_proj`` weights by ``1 / sqrt(num_layers)``; ``None`` skips
            the scaling.
    """

    def __init__(self,
                 embed_dims: int,
                 state_size: int = 16,
                 expand: int = 2,
                 conv_kernel: int = 4,
                 dt_rank: Optional[int] = None,
                 dt_min: float = 0.001,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4,
                 num_layers: Optional[int] = None) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.state_size = state_size
        self.inner_dims = expand * embed_dims
        self.dt_rank = dt_rank or math.ceil(embed_dims / 16)
        inner = self.inner_dims

        self.in_proj = nn.Linear(embed_dims, 2 * inner, bias=False)

        self.conv1d = self._make_conv(inner, conv_kernel)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * state_size, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner, bias=True)
        self.A_log = nn.Parameter(_s4d_real_a_log(inner, state_size))
        self.D = nn.Parameter(torch.ones(inner))

        self.conv1d_b = self._make_conv(inner, conv_kernel)
        self.x_proj_b = nn.Linear(inner, self.dt_rank + 2 * state_size, bias=False)
        self.dt_proj_b = nn.Linear(self.dt_rank, inner, bias=True)
        self.A_b_log = nn.Parameter(_s4d_real_a_log(inner, state_size))
        self.D_b = nn.Parameter(torch.ones(inner))

        self.out_proj = nn.Linear(inner, embed_dims, bias=False)

        dt_std = self.dt_rank**-0.5
        for dt_proj in (self.dt_proj, self.dt_proj_b):
            nn.init.uniform_(dt_proj.weight, -dt_std, dt_std)
            _init_dt_bias(dt_proj, dt_min, dt_max, dt_init_floor)
        if num_layers is not None:
            with torch.no_grad():
                self.out_proj.weight.div_(math.sqrt(num_layers))

    @staticmethod
    def _make_conv(channels: int, kernel: int) -> nn.Conv1d:
        return nn.Conv1d(
            channels, channels, kernel, groups=channels, padding=kernel - 1)

    def _scan_branch(self, x: torch.Tensor, z: torch.Tensor, conv: nn.Conv1d,
                     x_proj: nn.Linear, dt_proj: nn.Linear,
                     a_log: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Run one direction: causal conv, SiLU, projections, selective scan.

        Args:
            x: Input of shape (batch, inner, length).
            z: Gate of shape (batch, inner, length).

        Returns:
            Gated scan output of shape (batch, inner, length).
        """
        x = causal_conv1d(x, conv.weight, conv.bias, activation='silu')

        x_dbl = x_proj(x.transpose(1, 2))
        dt, b, c = torch.split(
            x_dbl, [self.dt_rank, self.state_size, self.state_size], dim=-1)
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)
        b = b.transpose(1, 2)
        c = c.transpose(1, 2)

        dtype = accumulation_dtype(a_log.dtype)
        a = -torch.exp(a_log.to(dtype))
        return selective_scan(
            x, delta, a, b, c, D=d.to(dtype), z=z,
            delta_bias=dt_proj.bias.to(dtype), delta_softplus=True)

    def forward(
        self,
        hidden_states: torch.Tensor,
        return_pre_proj: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Mix the tokens of each sequence in both directions.

        Args:
            hidden_states: Tokens of shape (batch, length, embed_dims).
            return_pre_proj: Also return the averaged gated output before
                ``out_proj``, shape (batch, length, inner_dims).

        Returns:
            The mixed tokens of shape (batch, length, embed_dims), and the
            pre-projection output when ``return_pre_proj`` is True.
        """
        xz = self.in_proj(hidden_states).transpose(1, 2)
        x, z = xz.chunk(2, dim=1)

        out_forward = self._scan_branch(x, z, self.conv1d, self.x_proj,
                                        self.dt_proj, self.A_log, self.D)
        out_backward = self._scan_branch(
            x.flip(-1), z.flip(-1), self.conv1d_b, self.x_proj_b,
            self.dt_proj_b, self.A_b_log, self.D_b)

        pre_proj = ((out_forward + out_backward.flip(-1)) / 2).transpose(1, 2)
        out = self.out_proj(pre_proj)
        if return_pre_proj:
            return out, pre_proj
        return out
