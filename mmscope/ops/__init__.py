"""Sequence operators of Mamba: the selective scan and the causal conv1d.

Each operator has a ``'cuda'`` backend from the optional ``mamba-ssm`` and
``causal-conv1d`` packages and a ``'torch'`` backend that runs anywhere.
``'auto'`` (the default) picks ``'cuda'`` for CUDA tensors when the package
is installed. The environment variables ``MMSCOPE_SCAN_BACKEND`` and
``MMSCOPE_CONV_BACKEND`` (``auto``, ``torch`` or ``cuda``) override the
default, and the ``backend`` argument of a call overrides both.

This package imports only torch and, when installed, the CUDA kernels.
"""
from .causal_conv1d import (CONV_BACKEND_ENV_VAR, causal_conv1d,
                            get_conv_backend)
from .selective_scan import (BACKEND_CHOICES, CUDA_INPUT_DTYPES,
                             SCAN_BACKEND_ENV_VAR, SelectiveScanFunction,
                             check_scan_inputs, get_scan_backend,
                             selective_scan)
from .selective_scan_ref import selective_scan_ref

__all__ = [
    'BACKEND_CHOICES',
    'CONV_BACKEND_ENV_VAR',
    'CUDA_INPUT_DTYPES',
    'SCAN_BACKEND_ENV_VAR',
    'SelectiveScanFunction',
    'causal_conv1d',
    'check_scan_inputs',
    'get_conv_backend',
    'get_scan_backend',
    'selective_scan',
    'selective_scan_ref',
]
