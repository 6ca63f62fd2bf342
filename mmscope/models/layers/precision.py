"""Dtype in which the Vim layers accumulate sums and keep the residual."""
import torch


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return float32 for float32 and lower precisions, else ``dtype``.

    Vim keeps its residual stream and normalisation statistics in float32
    for half-precision weights. A float64 model keeps float64, so that it is
    as precise as its weights, for example in gradient checks.

    Args:
        dtype: Dtype of the features or the weights.

    Returns:
        The dtype to compute in.
    """
    return torch.promote_types(dtype, torch.float32)
