"""Depthwise causal 1D convolution with a CUDA backend and a PyTorch backend.

Each channel is convolved with its own filter, and the output at position
``t`` depends only on the inputs at positions ``t - width + 1`` to ``t``
(the sequence is zero-padded on the left). Mamba applies this convolution
before the selective scan.

The ``'cuda'`` backend calls ``causal_conv1d_fn`` from the ``causal_conv1d``
package. The ``'torch'`` backend calls ``torch.nn.functional.conv1d`` with
``groups=dim``.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .selective_scan import CUDA_INPUT_DTYPES, read_backend_request

try:
    from causal_conv1d import causal_conv1d_fn
except ImportError:
    causal_conv1d_fn = None

CONV_BACKEND_ENV_VAR = 'MMSCOPE_CONV_BACKEND'
CONV_ACTIVATIONS = (None, 'silu', 'swish')

# The kernels of the causal-conv1d package (1.x) reject other widths.
CUDA_MIN_WIDTH = 2
CUDA_MAX_WIDTH = 4


def get_conv_backend(backend: Optional[str] = None,
                     device: Optional[torch.device] = None,
                     width: Optional[int] = None,
                     dtypes: Sequence[torch.dtype] = ()) -> str:
    """Resolve which causal convolution backend a call would use.

    ``'auto'`` resolves to ``'cuda'`` when ``causal_conv1d`` is importable,
    ``device`` is a CUDA device, ``width`` is one the CUDA kernel supports
    (2 to 4, or None for unknown) and every dtype in ``dtypes`` is one of
    ``CUDA_INPUT_DTYPES``, and to ``'torch'`` otherwise.

    Args:
        backend: ``'auto'``, ``'torch'``, ``'cuda'`` or None. None reads the
            environment variable ``MMSCOPE_CONV_BACKEND`` and defaults to
            ``'auto'``.
        device: Device of the input tensors. None means the CPU.
        width: Filter width, or None to skip the width check.
        dtypes: Dtypes of the input and the filters; empty to skip the
            dtype check.

    Returns:
        ``'torch'`` or ``'cuda'``.

    Raises:
        ValueError: If the backend name is invalid, or ``'cuda'`` is
            requested with a width the CUDA kernel does not support.
        RuntimeError: If ``'cuda'`` is requested but ``causal_conv1d`` is not
            installed, ``device`` is not a CUDA device, or the kernel does
            not support a dtype.
    """
    requested = read_backend_request(backend, CONV_BACKEND_ENV_VAR)
    device = torch.device('cpu') if device is None else torch.device(device)
    problems = []
    if causal_conv1d_fn is None:
        problems.append('causal_conv1d is not installed')
    if device.type != 'cuda':
        problems.append(f'the inputs are on {device}')
    unsupported = sorted({str(dtype) for dtype in dtypes
                          if dtype not in CUDA_INPUT_DTYPES})
    if unsupported:
        problems.append(f"the tensors have dtype {', '.join(unsupported)}, "
                        'which the kernel does not support')
    width_supported = width is None or (CUDA_MIN_WIDTH <= width <=
                                        CUDA_MAX_WIDTH)

    if requested == 'auto':
        return 'cuda' if not problems and width_supported else 'torch'
    if requested == 'torch':
        return requested

    if problems:
        raise RuntimeError(
            "The 'cuda' causal convolution backend needs the causal_conv1d "
            'package and float32, float16 or bfloat16 tensors on a CUDA '
            f"device, but {' and '.join(problems)}. Install the CUDA kernels "
            'with `pip install mamba-ssm causal-conv1d` (this needs a CUDA '
            'toolkit) or `pip install -e .[cuda]` in the mmscope repository, '
            "move the tensors to a CUDA device, or use backend='torch'.")
    if not width_supported:
        raise ValueError(
            "The 'cuda' causal convolution backend supports filter widths "
            f'{CUDA_MIN_WIDTH} to {CUDA_MAX_WIDTH}, got {width}. '
            "Use backend='torch' for other widths.")
    return requested


def causal_conv1d(x: torch.Tensor,
                  weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None,
                  activation: Optional[str] = None,
                  backend: Optional[str] = None) -> torch.Tensor:
    """Apply a depthwise causal 1D convolution and an optional SiLU.

    Args:
        x: Input of shape (batch, dim, length).
        weight: Filters of shape (dim, width) or (dim, 1, width), the latter
            being the weight layout of ``nn.Conv1d(dim, dim, width,
            groups=dim)``.
        bias: Bias of shape (dim,).
        activation: None, ``'silu'`` or ``'swish'`` (the same as
            ``'silu'``).
        backend: ``'auto'``, ``'torch'``, ``'cuda'`` or None, as in
            ``get_conv_backend``.

    Returns:
        The output of shape (batch, dim, length). It has the dtype of ``x``
        unless autocast changes the dtype of the convolution.

    Raises:
        ValueError: If a tensor has the wrong shape, the activation is not
            supported, or the backend name is invalid.
        RuntimeError: If the cuda backend is requested but unavailable.
    """
    weight_2d = _check_conv_inputs(x, weight, bias, activation)
    resolved = get_conv_backend(backend, x.device, weight_2d.shape[1],
                                (x.dtype, weight_2d.dtype))

    if resolved == 'cuda':
        return causal_conv1d_fn(
            x,
            weight_2d,
            bias=None if bias is None else bias.to(weight_2d.dtype),
            activation=activation)
    return _causal_conv1d_torch(x, weight_2d, bias, activation)


def _check_conv_inputs(x: torch.Tensor, weight: torch.Tensor,
                       bias: Optional[torch.Tensor],
                       activation: Optional[str]) -> torch.Tensor:
    """Validate the causal convolution inputs.

    Returns:
        The weight as a (dim, width) view.

    Raises:
        ValueError: If a tensor has the wrong shape or the activation is not
            one of ``CONV_ACTIVATIONS``. The message names the tensor.
    """
    if x.dim() != 3:
        raise ValueError('x must have shape (batch, dim, length), got '
                         f'{tuple(x.shape)} with {x.dim()} dimensions')
    dim = x.shape[1]

    if weight.dim() == 3 and weight.shape[1] == 1:
        weight = weight.squeeze(1)
    if weight.dim() != 2 or weight.shape[0] != dim or weight.shape[1] < 1:
        raise ValueError(
            'weight must have shape (dim, width) or (dim, 1, width) with '
            f'dim = {dim} and width >= 1, got {tuple(weight.shape)}')

    if bias is not None and tuple(bias.shape) != (dim, ):
        raise ValueError(f'bias must have shape (dim,) = ({dim},), got '
                         f'{tuple(bias.shape)}')
    if activation not in CONV_ACTIVATIONS:
        raise ValueError(f'Invalid activation {activation!r}. Valid '
                         f'choices are {CONV_ACTIVATIONS}.')
    return weight


def _causal_conv1d_torch(x: torch.Tensor, weight: torch.Tensor,
                         bias: Optional[torch.Tensor],
                         activation: Optional[str]) -> torch.Tensor:
    """Compute the causal convolution with ``F.conv1d``.

    ``weight`` has shape (dim, width). The weight and bias are cast to the
    dtype of ``x`` because ``F.conv1d`` requires matching dtypes outside
    autocast.
    """
    dim, width = weight.shape
    padded = F.pad(x, (width - 1, 0))
    out = F.conv1d(
        padded,
        weight.to(x.dtype).unsqueeze(1),
        None if bias is None else bias.to(x.dtype),
        groups=dim)
    if activation is not None:
        out = F.silu(out)
    return out
