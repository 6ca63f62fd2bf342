"""Selective scan of Mamba with a CUDA backend and a pure PyTorch backend.

The selective scan is the input-dependent state-space recurrence of Mamba
(the S6 layer). For each position ``t``, with ``delta'`` the step size after
the optional bias and softplus::

    x_t = exp(delta'_t * A) * x_{t-1} + delta'_t * B_t * u_t,  x_{-1} = 0
    y_t = sum_n C_t[n] * x_t[..., n]
    out_t = (y_t + D * u_t) * silu(z_t)

The ``'cuda'`` backend calls ``selective_scan_fn`` from the ``mamba_ssm``
package. The ``'torch'`` backend is a ``torch.autograd.Function`` with a
hand-written backward that runs on any device.
"""
import os
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except ImportError:
    selective_scan_fn = None

BACKEND_CHOICES = ('auto', 'torch', 'cuda')
SCAN_BACKEND_ENV_VAR = 'MMSCOPE_SCAN_BACKEND'

# Input dtypes that the mamba-ssm kernel accepts for u.
CUDA_INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_CUDA_INSTALL_HINT = (
    'Install the CUDA kernels with `pip install mamba-ssm causal-conv1d` '
    '(this needs a CUDA toolkit) or `pip install -e .[cuda]` in the mmscope '
    'repository')

ScanOutput = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


def read_backend_request(backend: Optional[str], env_var: str) -> str:
    """Read the requested backend name and validate it.

    Args:
        backend: Backend name passed by the caller. When None, the value of
            the environment variable ``env_var`` is used, and ``'auto'``
            when that is unset or empty.
        env_var: Name of the environment variable that selects the backend.

    Returns:
        One of ``BACKEND_CHOICES``.

    Raises:
        ValueError: If the name is not one of ``BACKEND_CHOICES``.
    """
    if backend is not None:
        source = 'the backend argument'
        requested = backend
    else:
        source = f'the environment variable {env_var}'
        requested = os.environ.get(env_var, '').strip().lower() or 'auto'

    if requested not in BACKEND_CHOICES:
        choices = ', '.join(repr(choice) for choice in BACKEND_CHOICES)
        raise ValueError(f'Invalid backend {requested!r} from {source}. '
                         f'Valid choices are {choices}.')
    return requested


def get_scan_backend(backend: Optional[str] = None,
                     device: Optional[torch.device] = None,
                     dtype: Optional[torch.dtype] = None) -> str:
    """Resolve which selective scan backend a call would use.

    ``'auto'`` resolves to ``'cuda'`` when ``mamba_ssm`` is importable,
    ``device`` is a CUDA device and ``dtype`` is one of
    ``CUDA_INPUT_DTYPES`` (or None), and to ``'torch'`` otherwise.

    Args:
        backend: ``'auto'``, ``'torch'``, ``'cuda'`` or None. None reads the
            environment variable ``MMSCOPE_SCAN_BACKEND`` and defaults to
            ``'auto'``.
        device: Device of the input tensors. None means the CPU.
        dtype: Dtype of ``u``, or None to skip the dtype check.

    Returns:
        ``'torch'`` or ``'cuda'``.

    Raises:
        ValueError: If the backend name is invalid.
        RuntimeError: If ``'cuda'`` is requested but ``mamba_ssm`` is not
            installed, ``device`` is not a CUDA device, or the kernel does
            not support ``dtype``.
    """
    requested = read_backend_request(backend, SCAN_BACKEND_ENV_VAR)
    device = torch.device('cpu') if device is None else torch.device(device)
    problems = []
    if selective_scan_fn is None:
        problems.append('mamba_ssm is not installed')
    if device.type != 'cuda':
        problems.append(f'the inputs are on {device}')
    if dtype is not None and dtype not in CUDA_INPUT_DTYPES:
        problems.append(f'u has dtype {dtype}, which the kernel does not '
                        'support')

    if requested == 'auto':
        return 'torch' if problems else 'cuda'
    if requested == 'cuda' and problems:
        raise RuntimeError(
            "The 'cuda' selective scan backend needs the mamba_ssm package "
            'and float32, float16 or bfloat16 inputs on a CUDA device, but '
            f"{' and '.join(problems)}. {_CUDA_INSTALL_HINT}, move the "
            "tensors to a CUDA device, or use backend='torch'.")
    return requested


def selective_scan(
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
    backend: Optional[str] = None,
) -> ScanOutput:
    """Run the selective scan on the chosen backend.

    The arguments and results follow ``selective_scan_fn`` of mamba-ssm
    with a real ``A`` and input-dependent ``B`` and ``C`` of shape
    (batch, state, length).

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
        backend: ``'auto'``, ``'torch'``, ``'cuda'`` or None, as in
            ``get_scan_backend``.

    Returns:
        The output of shape (batch, dim, length) in the dtype of ``u``. With
        ``return_last_state``, a tuple of the output and the last state of
        shape (batch, dim, state) in float32 (float64 on the torch backend
        when an input is float64). The torch backend propagates gradients
        through the last state, but the cuda backend ignores them, as
        mamba-ssm does.

    Raises:
        ValueError: If a tensor has the wrong shape or dtype, or the backend
            name is invalid.
        RuntimeError: If the cuda backend is requested but unavailable.
    """
    check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    resolved = get_scan_backend(backend, u.device, u.dtype)

    if resolved == 'cuda':
        return _scan_cuda(u, delta, A, B, C, D, z, delta_bias,
                          delta_softplus, return_last_state)

    inputs = (u, delta, A, B, C, D, z, delta_bias)
    needs_graph = torch.is_grad_enabled() and any(
        tensor is not None and tensor.requires_grad for tensor in inputs)
    if needs_graph:
        outputs = SelectiveScanFunction.apply(*inputs, delta_softplus,
                                              return_last_state)
    else:
        outputs = _scan_forward_no_grad(*inputs, delta_softplus,
                                        return_last_state)
    if return_last_state:
        return outputs[0], outputs[1]
    return outputs[0]


def check_scan_inputs(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
) -> None:
    """Validate the shapes, dtypes and devices of the selective scan inputs.

    Args:
        u: Input sequence, expected shape (batch, dim, length).
        delta: Step sizes, expected shape (batch, dim, length).
        A: State matrix diagonal, expected shape (dim, state).
        B: Input projection, expected shape (batch, state, length).
        C: Output projection, expected shape (batch, state, length).
        D: Skip connection weight, expected shape (dim,).
        z: Gate, expected shape (batch, dim, length).
        delta_bias: Step size bias, expected shape (dim,).

    Raises:
        ValueError: If a tensor has the wrong shape or dtype or is on
            another device than ``u``, or if the sequence is empty. The
            message names the tensor.
    """
    if u.dim() != 3:
        raise ValueError('u must have shape (batch, dim, length), got '
                         f'{tuple(u.shape)} with {u.dim()} dimensions')
    if A.dim() != 2:
        raise ValueError('A must have shape (dim, state), got '
                         f'{tuple(A.shape)} with {A.dim()} dimensions')
    batch, dim, length = u.shape
    state = A.shape[1]
    if length == 0:
        raise ValueError('u must contain at least one position, got length 0')

    expected_shapes = [
        ('delta', delta, '(batch, dim, length)', (batch, dim, length)),
        ('A', A, '(dim, state)', (dim, state)),
        ('B', B, '(batch, state, length)', (batch, state, length)),
        ('C', C, '(batch, state, length)', (batch, state, length)),
        ('D', D, '(dim,)', (dim, )),
        ('z', z, '(batch, dim, length)', (batch, dim, length)),
        ('delta_bias', delta_bias, '(dim,)', (dim, )),
    ]
    for name, tensor, layout, expected in expected_shapes:
        if tensor is not None and tuple(tensor.shape) != expected:
            raise ValueError(f'{name} must have shape {layout} = '
                             f'{expected}, got {tuple(tensor.shape)}')

    named_tensors = [('u', u)] + [(name, tensor)
                                  for name, tensor, _, _ in expected_shapes]
    _check_floating_on_device(named_tensors, u.device)


def _check_floating_on_device(
        named_tensors: Sequence[Tuple[str, Optional[torch.Tensor]]],
        device: torch.device) -> None:
    """Raise ValueError unless every given tensor is real and on ``device``."""
    for name, tensor in named_tensors:
        if tensor is None:
            continue
        if not tensor.is_floating_point():
            raise ValueError(f'{name} must be a real floating point tensor, '
                             f'got dtype {tensor.dtype}')
        if tensor.device != device:
            raise ValueError(f'{name} is on {tensor.device} but u is on '
                             f'{device}. Move all inputs to one device.')


def _scan_cuda(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
    return_last_state: bool,
) -> ScanOutput:
    """Call mamba-ssm's ``selective_scan_fn`` with the dtypes it accepts.

    The mamba-ssm kernel requires ``A``, ``D`` and ``delta_bias`` in float32,
    and ``delta``, ``B``, ``C`` and ``z`` in the dtype of ``u``.
    """
    input_dtype = u.dtype
    return selective_scan_fn(
        u,
        delta.to(input_dtype),
        A.float(),
        B.to(input_dtype),
        C.to(input_dtype),
        D=None if D is None else D.float(),
        z=None if z is None else z.to(input_dtype),
        delta_bias=None if delta_bias is None else delta_bias.float(),
        delta_softplus=delta_softplus,
        return_last_state=return_last_state,
    )


# The torch backend processes the sequence in chunks of positions. For
# each chunk, one vectorized operation computes the decays exp(delta_t * A)
# and another the input terms delta_t * B_t * u_t, both of shape
# (chunk, batch, dim, state). The sequential recurrence then takes one
# in-place multiply-add per position. Chunks bound the temporary memory
# and keep the buffers in cache. A chunk buffer has about
# CHUNK_ELEMENTS elements (2 MiB in float32), and the chunk length is
# clamped to [MIN_CHUNK_LENGTH, MAX_CHUNK_LENGTH] positions.
# NOTE: the sizes were tuned on a 2-core AMD EPYC (1 MiB L2 per core, 32 MiB
# L3) at batch 1, dim 768, state 16 and length 1024. There, forward plus
# backward took 72 ms with 2 MiB buffers, 74 ms with 1 MiB and 97 ms with
# 12 MiB (256 positions), best of 5 runs. Other CPUs may prefer other sizes.
CHUNK_ELEMENTS = 2**19
MIN_CHUNK_LENGTH = 8
MAX_CHUNK_LENGTH = 256


def _chunk_length(batch: int, dim: int, state: int) -> int:
    """Return the number of positions per chunk for these sizes."""
    per_position = max(1, batch * dim * state)
    return max(MIN_CHUNK_LENGTH,
               min(MAX_CHUNK_LENGTH, CHUNK_ELEMENTS // per_position))


def _compute_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """Return float64 if any given tensor is float64, else float32."""
    for tensor in tensors:
        if tensor is not None and tensor.dtype == torch.float64:
            return torch.float64
    return torch.float32


def _cast(tensor: Optional[torch.Tensor],
          dtype: torch.dtype) -> Optional[torch.Tensor]:
    """Return ``tensor`` in ``dtype``, or None when it is None."""
    return None if tensor is None else tensor.to(dtype)


def _time_major(tensor: torch.Tensor) -> torch.Tensor:
    """Copy a (batch, channels, length) tensor to a contiguous
    (length, batch, channels) tensor, so that each position is contiguous.
    """
    return tensor.permute(2, 0, 1).contiguous()


def _effective_delta(delta: torch.Tensor, delta_bias: Optional[torch.Tensor],
                     delta_softplus: bool) -> torch.Tensor:
    """Return ``delta`` after the optional bias and softplus."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _scan_chunk(delta_c: torch.Tensor, A: torch.Tensor, B_c: torch.Tensor,
                u_c: torch.Tensor,
                initial: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Discretize one chunk and run the state recurrence over it.

    Args:
        delta_c: Effective step sizes of shape (chunk, batch, dim).
        A: State matrix diagonal of shape (dim, state).
        B_c: Input projection of shape (chunk, batch, state).
        u_c: Input sequence of shape (chunk, batch, dim).
        initial: State before the chunk, shape (batch, dim, state).

    Returns:
        A tuple of the states ``x_t`` and the decays ``exp(delta_t * A)``,
        both of shape (chunk, batch, dim, state).
    """
    decays = torch.mul(delta_c.unsqueeze(-1), A).exp_()

    # The states start as the input terms delta_t * B_t * u_t, and the loop
    # adds the decayed previous state to each in place.
    states = torch.mul((delta_c * u_c).unsqueeze(-1), B_c.unsqueeze(2))
    state_steps = states.unbind(0)
    decay_steps = decays.unbind(0)
    state_steps[0].addcmul_(decay_steps[0], initial)
    for t in range(1, len(state_steps)):
        state_steps[t].addcmul_(decay_steps[t], state_steps[t - 1])
    return states, decays


def _scan_sequence(
    delta_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    u_t: torch.Tensor,
    keep_initial_states: bool,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Run the recurrence chunk by chunk and contract the states with C.

    All sequence tensors are time-major: (length, batch, channels).

    Args:
        delta_t: Effective step sizes of shape (length, batch, dim).
        A: State matrix diagonal of shape (dim, state).
        B_t: Input projection of shape (length, batch, state).
        C_t: Output projection of shape (length, batch, state).
        u_t: Input sequence of shape (length, batch, dim).
        keep_initial_states: Whether to return the state before each chunk,
            which the backward needs.

    Returns:
        A tuple of ``y`` of shape (length, batch, dim), the last state of
        shape (batch, dim, state), and the states before each chunk of
        shape (chunks, batch, dim, state) or None.
    """
    length, batch, dim = u_t.shape
    chunk = _chunk_length(batch, dim, A.shape[1])
    y_t = u_t.new_empty(length, batch, dim)
    state = u_t.new_zeros(batch, dim, A.shape[1])
    initial_states = []

    for start in range(0, length, chunk):
        part = slice(start, start + chunk)
        if keep_initial_states:
            initial_states.append(state)
        states, _ = _scan_chunk(delta_t[part], A, B_t[part], u_t[part],
                                state)
        y_t[part] = torch.einsum('lbdn,lbn->lbd', states, C_t[part])
        # Cloning frees the chunk buffer that the last state is a view of.
        state = states[-1].clone()

    if not keep_initial_states:
        return y_t, state, None
    return y_t, state, torch.stack(initial_states)


def _forward_torch(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
    dtype: torch.dtype,
    keep_initial_states: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Compute the torch backend forward in ``dtype``.

    Returns:
        A tuple of the output and the output before the ``silu(z)`` gate,
        both of shape (batch, dim, length), the last state, and the states
        before each chunk or None. All are in ``dtype``.
    """
    u_c = u.to(dtype)
    delta_eff = _effective_delta(delta.to(dtype), _cast(delta_bias, dtype),
                                 delta_softplus)
    y_t, last_state, initial_states = _scan_sequence(
        _time_major(delta_eff), A.to(dtype), _time_major(B.to(dtype)),
        _time_major(C.to(dtype)), _time_major(u_c), keep_initial_states)

    ungated = y_t.permute(1, 2, 0)
    if D is not None:
        ungated = ungated + D.to(dtype)[:, None] * u_c
    out = ungated if z is None else ungated * F.silu(z.to(dtype))
    return out, ungated, last_state, initial_states


def _scan_forward_no_grad(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
    return_last_state: bool,
) -> Tuple[torch.Tensor, ...]:
    """Run the torch backend forward without recording a graph.

    Returns:
        A tuple of the output in the dtype of ``u``, followed by the last
        state in the compute dtype when ``return_last_state`` is set.
    """
    dtype = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    with torch.no_grad(), torch.autocast(device_type=u.device.type,
                                         enabled=False):
        out, _, last_state, _ = _forward_torch(u, delta, A, B, C, D, z,
                                               delta_bias, delta_softplus,
                                               dtype, False)
    if return_last_state:
        return out.to(u.dtype), last_state
    return (out.to(u.dtype), )


class SelectiveScanFunction(torch.autograd.Function):
    """Selective scan with a hand-written backward for the torch backend.

    The forward and backward run in float32 (float64 when an input is
    float64) with autocast disabled, whatever the input dtypes.

    Between forward and backward it keeps the inputs, the state before
    each chunk of positions and, when ``z`` is given, the ungated output of
    shape (batch, dim, length). The backward recomputes the states one
    chunk at a time, so its largest temporaries are the
    (chunk, batch, dim, state) buffers of one chunk.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        u: torch.Tensor,
        delta: torch.Tensor,
        A: torch.Tensor,
        B: torch.Tensor,
        C: torch.Tensor,
        D: Optional[torch.Tensor],
        z: Optional[torch.Tensor],
        delta_bias: Optional[torch.Tensor],
        delta_softplus: bool,
        return_last_state: bool,
    ) -> Tuple[torch.Tensor, ...]:
        """Compute the output, and the last state if requested."""
        dtype = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
        with torch.autocast(device_type=u.device.type, enabled=False):
            out, ungated, last_state, initial_states = _forward_torch(
                u, delta, A, B, C, D, z, delta_bias, delta_softplus, dtype,
                True)

        ctx.compute_dtype = dtype
        ctx.delta_softplus = delta_softplus
        ctx.return_last_state = return_last_state
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias,
                              None if z is None else ungated, initial_states)

        if return_last_state:
            return out.to(u.dtype), last_state
        return (out.to(u.dtype), )

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_out: torch.Tensor,
        *grad_last_state: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """Compute the gradients of all forward arguments.

        The gradients are in the dtype of each input, and None for inputs
        that were None or do not require gradients and for the two flags.
        """
        saved = ctx.saved_tensors
        inputs = saved[:8]
        ungated, initial_states = saved[8:]
        needs_grad = ctx.needs_input_grad[:len(inputs)]

        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            grads = _scan_backward(
                grad_out,
                grad_last_state[0] if ctx.return_last_state else None,
                inputs,
                ungated,
                initial_states,
                ctx.delta_softplus,
                ctx.compute_dtype,
                needs_grad,
            )

        results = []
        for grad, tensor, needed in zip(grads, inputs, needs_grad):
            if grad is None or not needed:
                results.append(None)
            else:
                results.append(grad.to(tensor.dtype))
        return tuple(results) + (None, None)


def _scan_backward(
    grad_out: torch.Tensor,
    grad_last_state: Optional[torch.Tensor],
    inputs: Sequence[Optional[torch.Tensor]],
    ungated: Optional[torch.Tensor],
    initial_states: torch.Tensor,
    delta_softplus: bool,
    dtype: torch.dtype,
    needs_grad: Sequence[bool],
) -> Tuple[Optional[torch.Tensor], ...]:
    """Compute the gradients of the selective scan inputs.

    Args:
        grad_out: Gradient of the output, shape (batch, dim, length).
        grad_last_state: Gradient of the last state, shape
            (batch, dim, state), or None.
        inputs: The forward inputs ``u, delta, A, B, C, D, z, delta_bias``.
        ungated: Output before the ``silu(z)`` gate, or None without ``z``.
        initial_states: States before each chunk, saved by the forward.
        delta_softplus: Whether the forward applied softplus to ``delta``.
        dtype: Compute dtype.
        needs_grad: Whether each input in ``inputs`` needs a gradient.

    Returns:
        Gradients of ``u, delta, A, B, C, D, z, delta_bias`` in ``dtype``.
        An entry is None when its input is None, and may be None when its
        input does not need a gradient.
    """
    u, delta, A, B, C, D, z, delta_bias = inputs
    u = u.to(dtype)
    grad_y = grad_out.to(dtype)

    # Output gate and skip connection: out = (y + D * u) * silu(z).
    grad_z = None
    if z is not None:
        grad_y, grad_z = _gate_backward(grad_y, z.to(dtype), ungated)
    grad_D = None
    if D is not None and needs_grad[5]:
        grad_D = (grad_y * u).sum(dim=(0, 2))

    # Recompute the step sizes, then backpropagate through the recurrence.
    delta_raw = delta.to(dtype)
    if delta_bias is not None:
        delta_raw = delta_raw + delta_bias.to(dtype)[:, None]
    delta_eff = F.softplus(delta_raw) if delta_softplus else delta_raw
    sequences = _RecurrenceInputs(
        delta_t=_time_major(delta_eff),
        A=A.to(dtype),
        B_t=_time_major(B.to(dtype)),
        C_t=_time_major(C.to(dtype)),
        u_t=_time_major(u),
    )
    if grad_last_state is not None:
        grad_last_state = grad_last_state.to(dtype)
    grad_u_t, grad_delta_t, grad_A, grad_B_t, grad_C_t = _recurrence_backward(
        _time_major(grad_y), grad_last_state, sequences, initial_states,
        needs_grad)

    grad_u = grad_u_t.permute(1, 2, 0)
    if D is not None:
        grad_u = grad_u + grad_y * D.to(dtype)[:, None]

    # Chain rule through the softplus and the bias of the step sizes.
    grad_delta = grad_delta_t.permute(1, 2, 0)
    if delta_softplus:
        grad_delta = grad_delta * torch.sigmoid(delta_raw)
    grad_delta_bias = None
    if delta_bias is not None:
        grad_delta_bias = grad_delta.sum(dim=(0, 2))

    grad_B = None if grad_B_t is None else grad_B_t.permute(1, 2, 0)
    grad_C = None if grad_C_t is None else grad_C_t.permute(1, 2, 0)
    return (grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D, grad_z,
            grad_delta_bias)


def _gate_backward(
        grad_out: torch.Tensor, z: torch.Tensor,
        ungated: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Backpropagate through ``out = ungated * silu(z)``.

    Returns:
        A tuple of the gradients of ``ungated`` and ``z``.
    """
    sigmoid_z = torch.sigmoid(z)
    grad_ungated = grad_out * z * sigmoid_z

    # d silu(z) / dz = sigmoid(z) * (1 + z * (1 - sigmoid(z)))
    silu_slope = sigmoid_z * (1 + z * (1 - sigmoid_z))
    grad_z = grad_out * ungated * silu_slope
    return grad_ungated, grad_z


class _RecurrenceInputs(NamedTuple):
    """Time-major inputs of the recurrence in the compute dtype.

    Sequence tensors have shape (length, batch, channels): ``delta_t`` and
    ``u_t`` (length, batch, dim), ``B_t`` and ``C_t`` (length, batch,
    state). ``delta_t`` is the step size after bias and softplus.
    """

    delta_t: torch.Tensor
    A: torch.Tensor
    B_t: torch.Tensor
    C_t: torch.Tensor
    u_t: torch.Tensor


def _recurrence_backward(
    grad_y_t: torch.Tensor,
    grad_last_state: Optional[torch.Tensor],
    sequences: _RecurrenceInputs,
    initial_states: torch.Tensor,
    needs_grad: Sequence[bool],
) -> Tuple[Optional[torch.Tensor], ...]:
    """Backpropagate from ``y`` through the readout and the recurrence.

    Chunks are processed from last to first. ``carry`` is the gradient that
    flows into the last state of the previous chunk,
    ``exp(delta_s * A) * dL/dx_s`` for the first position ``s`` of the
    current chunk.

    Args:
        grad_y_t: Gradient of ``y`` (before skip and gate), time-major.
        grad_last_state: Gradient of the last state, or None.
        sequences: Time-major inputs of the recurrence.
        initial_states: States before each chunk, saved by the forward.
        needs_grad: Whether ``u, delta, A, B, C, D, z, delta_bias`` need
            gradients.

    Returns:
        The gradients of ``u_t``, ``delta_t``, ``A``, ``B_t`` and ``C_t``.
        Those of ``A``, ``B_t`` and ``C_t`` are None when not needed.
    """
    length, batch, dim = sequences.u_t.shape
    chunk = _chunk_length(batch, dim, sequences.A.shape[1])
    grad_u_t = torch.empty_like(sequences.u_t)
    grad_delta_t = torch.empty_like(sequences.delta_t)
    grad_A = torch.zeros_like(sequences.A) if needs_grad[2] else None
    grad_B_t = torch.empty_like(sequences.B_t) if needs_grad[3] else None
    grad_C_t = torch.empty_like(sequences.C_t) if needs_grad[4] else None

    carry = grad_last_state
    for index in range(len(initial_states) - 1, -1, -1):
        part = slice(index * chunk, (index + 1) * chunk)
        chunk_grads = _chunk_backward(
            grad_y_t[part], sequences, part, initial_states[index], carry,
            needs_grad)
        grad_u_t[part], grad_delta_t[part] = chunk_grads[:2]
        if grad_A is not None:
            grad_A += chunk_grads[2]
        if grad_B_t is not None:
            grad_B_t[part] = chunk_grads[3]
        if grad_C_t is not None:
            grad_C_t[part] = chunk_grads[4]
        carry = chunk_grads[5]

    return grad_u_t, grad_delta_t, grad_A, grad_B_t, grad_C_t


def _chunk_backward(
    grad_y_c: torch.Tensor,
    sequences: _RecurrenceInputs,
    part: slice,
    initial: torch.Tensor,
    carry: Optional[torch.Tensor],
    needs_grad: Sequence[bool],
) -> Tuple[Optional[torch.Tensor], ...]:
    """Backpropagate through the positions ``part`` of the recurrence.

    Args:
        grad_y_c: Gradient of ``y`` for this chunk, (chunk, batch, dim).
        sequences: Time-major inputs of the whole recurrence.
        part: Positions of this chunk.
        initial: State before this chunk, shape (batch, dim, state).
        carry: Gradient flowing into the last state of this chunk from the
            positions after it (or from the last-state output), or None.
        needs_grad: Whether ``u, delta, A, B, C, D, z, delta_bias`` need
            gradients.

    Returns:
        The gradients of this chunk's ``u_t`` and ``delta_t``, its
        contribution to the gradient of ``A``, the gradients of its ``B_t``
        and ``C_t``, and the carry for the previous chunk. The ``A``,
        ``B_t`` and ``C_t`` entries are None when not needed.
    """
    A = sequences.A
    delta_c = sequences.delta_t[part]
    u_c = sequences.u_t[part]
    B_c = sequences.B_t[part]
    states, decays = _scan_chunk(delta_c, A, B_c, u_c, initial)

    # Reverse recurrence for the state gradients:
    # dL/dx_t = C_t * dy_t + exp(delta_{t+1} * A) * dL/dx_{t+1}.
    grad_states = torch.mul(grad_y_c.unsqueeze(-1),
                            sequences.C_t[part].unsqueeze(2))
    if carry is not None:
        grad_states[-1] += carry
    grad_steps = grad_states.unbind(0)
    decay_steps = decays.unbind(0)
    for t in range(len(grad_steps) - 2, -1, -1):
        grad_steps[t].addcmul_(decay_steps[t + 1], grad_steps[t + 1])

    # y_t = C_t . x_t, so dL/dC_t is the sum over dim of dy_t * x_t.
    grad_C_c = None
    if needs_grad[4]:
        grad_C_c = torch.einsum('lbdn,lbd->lbn', states, grad_y_c)

    # Input term delta_t * B_t * u_t of the recurrence.
    grad_drive_B = torch.einsum('lbdn,lbn->lbd', grad_states, B_c)
    grad_u_c = grad_drive_B * delta_c
    grad_delta_c = grad_drive_B * u_c
    grad_B_c = None
    if needs_grad[3]:
        grad_B_c = torch.einsum('lbdn,lbd->lbn', grad_states, delta_c * u_c)

    # Decay term exp(delta_t * A) * x_{t-1}. The gradient with respect to
    # the exponent delta_t * A is dL/dx_t * exp(delta_t * A) * x_{t-1}, and
    # it overwrites the decays buffer.
    exponent_grads = decays.mul_(grad_states)
    next_carry = exponent_grads[0].clone()
    exponent_grads[1:].mul_(states[:-1])
    exponent_grads[0].mul_(initial)
    grad_delta_c += torch.einsum('lbdn,dn->lbd', exponent_grads, A)
    grad_A_c = None
    if needs_grad[2]:
        grad_A_c = exponent_grads.mul_(delta_c.unsqueeze(-1)).sum(dim=(0, 1))

    return grad_u_c, grad_delta_c, grad_A_c, grad_B_c, grad_C_c, next_carry
