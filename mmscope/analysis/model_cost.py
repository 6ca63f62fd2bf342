"""Parameter and compute counts of whole segmentors and detectors.

The backbone is counted analytically (see :mod:`mmscope.models.utils.flops`)
because MMEngine's counter does not see the selective scan. The neck and
heads are counted with MMEngine's ``FlopAnalyzer`` on the backbone's real
output maps. Both count one multiply-accumulate as one operation.
"""
from typing import List, Sequence, Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from .backbone_override import fixed_backbone_output


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameters of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters())


def make_data_samples(task: str, batch_size: int,
                      shape: Tuple[int, int]) -> list:
    """Build test-time data samples for unresized inputs of ``shape``.

    Args:
        task: ``'seg'`` or ``'det'``.
        batch_size: Number of samples.
        shape: Input (height, width), also used as the original shape.

    Returns:
        ``SegDataSample`` or ``DetDataSample`` objects with the metainfo the
        heads read at test time.
    """
    if task == 'seg':
        from mmseg.structures import SegDataSample as sample_type
    else:
        from mmdet.structures import DetDataSample as sample_type
    height, width = shape
    metainfo = dict(img_shape=(height, width), ori_shape=(height, width),
                    pad_shape=(height, width),
                    batch_input_shape=(height, width),
                    scale_factor=(1.0, 1.0))
    return [sample_type(metainfo=metainfo) for _ in range(batch_size)]


class _NeckAndHeads(nn.Module):
    """Tensor-mode forward of a model whose backbone output is given."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor,
                 data_samples: list) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.data_samples = data_samples

    def forward(self, *maps: torch.Tensor):
        with fixed_backbone_output(self.model, maps):
            return self.model(self.inputs, self.data_samples, mode='tensor')


def neck_and_head_macs(model: nn.Module, inputs: torch.Tensor,
                       maps: Sequence[torch.Tensor],
                       data_samples: list) -> int:
    """Count the MACs of everything after the backbone for one batch.

    The model runs in its tensor mode (``_forward``), as MMEngine's and
    mmdet's FLOP tools run it: the decode head of a segmentor, or the neck,
    RPN head and RoI heads of a detector on the proposals the RPN returns.

    Args:
        model: Segmentor or detector in evaluation mode.
        inputs: The batch of images ``maps`` was computed from.
        maps: The backbone's output for ``inputs``.
        data_samples: Data samples of the batch.

    Returns:
        The MACs counted by MMEngine's ``FlopAnalyzer`` for the batch.
    """
    analyzer = FlopAnalyzer(_NeckAndHeads(model, inputs, data_samples),
                            tuple(maps))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return int(analyzer.total())


def backbone_macs_per_image(backbone: nn.Module, input_shape: Tuple[int, int],
                            batch_size: int) -> List[float]:
    """Return the analytic backbone MACs of each image of the last batch.

    A MambaScope backbone reports the cost of each image's own path in its
    ``scope_info`` records, so call this right after a forward pass. A
    Vision Mamba backbone has one cost per input shape.

    Args:
        backbone: ``VisionMamba`` or ``MambaScope`` module.
        input_shape: Input (height, width) of that pass.
        batch_size: Number of images in that pass.

    Returns:
        MACs per image.
    """
    records = getattr(backbone, 'scope_info', None)
    if hasattr(backbone, 'forward_scope'):
        if not records:
            raise RuntimeError('The MambaScope backbone has no scope records; '
                               'run a forward pass first.')
        return [record['backbone_gflops'] * 1e9 for record in records]
    if not hasattr(backbone, 'count_macs'):
        raise TypeError(
            f'{type(backbone).__name__} has no analytic MAC count; the '
            'benchmark supports VisionMamba and MambaScope backbones.')
    return [float(backbone.count_macs(input_shape))] * batch_size
