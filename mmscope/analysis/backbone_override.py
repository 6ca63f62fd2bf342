"""Run a segmentor or detector on backbone maps computed beforehand."""
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn


@contextmanager
def fixed_backbone_output(model: nn.Module,
                          maps: Sequence[torch.Tensor]) -> Iterator[None]:
    """Make ``model.backbone`` return ``maps`` instead of running.

    The neck and heads of an mmseg or mmdet model then run on ``maps`` in
    their usual code path. The threshold sweep uses this to decode both the
    coarse-path and the fine-path maps of one MambaScope pass, and the
    benchmark to count the neck and heads alone. The backbone's own
    ``forward`` is restored on exit.

    Args:
        model: A segmentor or detector with a ``backbone`` attribute.
        maps: The multi-scale maps the backbone returns inside the block.
    """
    backbone = model.backbone
    if 'forward' in vars(backbone):
        raise RuntimeError(
            'The backbone forward is already overridden. Leave the outer '
            'fixed_backbone_output block before entering another one on the '
            'same model.')
    fixed = tuple(maps)

    def forward(*args, **kwargs):
        return fixed

    backbone.forward = forward
    try:
        yield
    finally:
        del backbone.forward
