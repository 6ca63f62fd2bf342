"""Mask R-CNN that trains the two stages of a MambaScope backbone."""
from typing import List, Tuple

import torch
from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS
from mmdet.structures import SampleList

from mmscope.models.utils.loss_weight import checked_loss_weight
from mmscope.models.utils.scope_losses import (gate_targets,
                                               prefix_and_weight,
                                               present_instances)


@MODELS.register_module()
class ScopeMaskRCNN(MaskRCNN):
    """mmdet ``MaskRCNN`` for a ``MambaScope`` backbone.

    In ``loss`` every image runs both stages. The standard RPN and RoI
    losses are computed on the fine-stage maps and again on the coarse-path
    maps (keys prefixed ``coarse_``, scaled by ``coarse_loss_weight``). The
    gate loss ``loss_gate`` is computed on the classes of the ground-truth
    instances. ``predict`` is the standard one and copies
    the backbone's decisions into each result's metainfo under ``scope``.

    Args:
        coarse_loss_weight: Weight of the coarse-path losses.
        *args, **kwargs: Arguments of ``MaskRCNN``.
    """

    def __init__(self, *args, coarse_loss_weight: float = 1.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self.backbone, 'forward_scope'):
            raise TypeError(
                'ScopeMaskRCNN needs a MambaScope backbone, got '
                f'{type(self.backbone).__name__}; use MaskRCNN for other '
                'backbones.')
        self.coarse_loss_weight = checked_loss_weight(coarse_loss_weight,
                                                      'coarse_loss_weight')
        self._queued_maps: List[Tuple[torch.Tensor, ...]] = []

    def extract_feat(self, batch_inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """Run the neck on queued backbone maps, or on a new backbone pass.

        ``loss`` queues the fine and the coarse maps of one backbone pass so
        that the standard two-stage loss runs once on each.
        """
        if self._queued_maps:
            maps = self._queued_maps.pop(0)
        else:
            maps = self.backbone(batch_inputs)
        if self.with_neck:
            maps = self.neck(maps)
        return maps

    def _check_one_map_set_used(self, expected_left: int) -> None:
        """Raise unless the two-stage loss took exactly one set of maps.

        mmdet 3.3's ``TwoStageDetector.loss`` calls ``extract_feat`` once.
        A version that calls it another number of times would pair the
        losses with the wrong maps.
        """
        if len(self._queued_maps) != expected_left:
            raise RuntimeError(
                'ScopeMaskRCNN expects TwoStageDetector.loss to call '
                'extract_feat once per loss, as mmdet 3.3 does; this mmdet '
                'version calls it another number of times.')

    def loss(self, batch_inputs: torch.Tensor,
             batch_data_samples: SampleList) -> dict:
        """Compute fine, coarse and gate losses."""
        scope = self.backbone(batch_inputs, scope_output=True,
                              with_coarse_maps=True)
        self._queued_maps = [scope.maps, scope.coarse_maps]
        try:
            losses = super().loss(batch_inputs, batch_data_samples)
            self._check_one_map_set_used(expected_left=1)
            coarse_losses = super().loss(batch_inputs, batch_data_samples)
            self._check_one_map_set_used(expected_left=0)
        finally:
            self._queued_maps = []
        losses.update(
            prefix_and_weight(coarse_losses, 'coarse_',
                              self.coarse_loss_weight))

        label_sets = [
            present_instances(sample.gt_instances.labels)
            for sample in batch_data_samples
        ]
        gate_head = self.backbone.gate_head
        losses['loss_gate'] = gate_head.loss(
            scope.gate_logits, gate_targets(gate_head, label_sets))
        return losses

    def predict(self, batch_inputs: torch.Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict as ``MaskRCNN`` and attach the scope records."""
        results = super().predict(batch_inputs, batch_data_samples, rescale)
        records = getattr(self.backbone, 'scope_info', None)
        if records and len(records) == len(results):
            for sample, record in zip(results, records):
                sample.set_metainfo(dict(scope=record))
        return results
