"""Sequential reference implementation of the selective scan.

This module is the test oracle for the faster backends in
``mmscope.ops.selective_scan``. It steps through the sequence one position
at a time and relies on plain autograd for gradients, so it is slow (its
backward keeps a small graph per step) but easy to check by reading.
It imports only torch.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Run the selective scan with a plain loop over the sequence.

    With ``delta'`` the step size after the optional bias and softplus, the
    zero-order-hold discretization and the recurrence are, for each
    position ``t``::

        x_t = exp(delta'_t * A) * x_{t-1} + delta'_t * B_t * u_t,  x_{-1} = 0
        y_t = sum_n C_t[n] * x_t[..., n]
        out_t = (y_t + D * u_t) * silu(z_t)

    where the ``D`` and ``z`` terms apply only when those tensors are given.

    The computation runs in float32, or in float64 when any input is
    float64, with autocast disabled.

    Args:
        u: Input sequence of shape (batch, dim, length).
        delta: Step sizes of shape (batch, dim, length).
        A: State matrix diagonal of shape (dim, state), usually negative.
        B: Input projection of shape (batch, state, length).
        C: Output projection of shape (batch, state, length).
        D: Skip connection weight of shape (dim,).
        z: Gate of shape (batch, dim, length), applied as ``silu(z)``.
        delta_bias: Bias of shape (dim,) added to ``delta``.
        delta_softplus: Whether to apply softplus to ``delta`` after the
            bias.
        return_last_state: Whether to also return the state after the last
            position.

    Returns:
        The output of shape (batch, dim, length) in the dtype of ``u``. With
        ``return_last_state``, a tuple of the output and the last state of
        shape (batch, dim, state) in the compute dtype (float32 unless an
        input is float64).
    """
    compute_dtype = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    with torch.autocast(device_type=u.device.type, enabled=False):
        out, last_state = _scan_loop(
            u.to(compute_dtype),
            delta.to(compute_dtype),
            A.to(compute_dtype),
            B.to(compute_dtype),
            C.to(compute_dtype),
            None if D is None else D.to(compute_dtype),
            None if z is None else z.to(compute_dtype),
            None if delta_bias is None else delta_bias.to(compute_dtype),
            delta_softplus,
        )

    out = out.to(u.dtype)
    if return_last_state:
        return out, last_state
    return out


def _compute_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """Return float64 if any given tensor is float64, else float32."""
    for tensor in tensors:
        if tensor is not None and tensor.dtype == torch.float64:
            return torch.float64
    return torch.float32


def _scan_loop(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Compute the output and the last state from inputs in one dtype."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)

    # unbind slices every position at once. Indexing one position per step
    # would make autograd allocate a full-size gradient for every slice,
    # which costs time quadratic in the length.
    batch, dim, length = u.shape
    state = u.new_zeros(batch, dim, A.shape[1])
    outputs = []
    steps = zip(u.unbind(-1), delta.unbind(-1), B.unbind(-1), C.unbind(-1))
    for u_t, delta_t, B_t, C_t in steps:
        decay = torch.exp(delta_t[:, :, None] * A)
        drive = (delta_t * u_t)[:, :, None] * B_t[:, None, :]
        state = decay * state + drive
        outputs.append((state * C_t[:, None, :]).sum(dim=-1))
    out = torch.stack(outputs, dim=-1)

    if D is not None:
        out = out + D[:, None] * u
    if z is not None:
        out = out * F.silu(z)
    return out, state
