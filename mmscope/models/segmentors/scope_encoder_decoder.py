"""EncoderDecoder that trains the two stages of a MambaScope backbone."""
from typing import List, Optional

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList, add_prefix

from mmscope.models.utils.loss_weight import checked_loss_weight
from mmscope.models.utils.scope_losses import (gate_targets,
                                               pixel_kl_divergence,
                                               prefix_and_weight,
                                               present_labels)


@MODELS.register_module()
class ScopeEncoderDecoder(EncoderDecoder):
    """mmseg ``EncoderDecoder`` for a ``MambaScope`` backbone.

    In ``loss`` every image runs both stages. The standard decode and
    auxiliary losses are computed on the fine-stage maps and again on the
    coarse-path maps (keys prefixed ``coarse_``, scaled by
    ``coarse_loss_weight``). The gate loss ``loss_gate`` is computed on class
    presence. With ``distill_loss_weight > 0``, ``loss_distill`` adds a
    pixel-wise KL divergence from the fine logits (detached) to the coarse
    logits. ``predict`` is the standard one
    and copies the backbone's decisions into each result's metainfo under
    ``scope``.

    Args:
        coarse_loss_weight: Weight of the coarse-path losses.
        distill_loss_weight: Weight of the distillation loss; 0 disables it.
        *args, **kwargs: Arguments of ``EncoderDecoder``.
    """

    def __init__(self, *args, coarse_loss_weight: float = 1.0,
                 distill_loss_weight: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self.backbone, 'forward_scope'):
            raise TypeError(
                'ScopeEncoderDecoder needs a MambaScope backbone, got '
                f'{type(self.backbone).__name__}; use EncoderDecoder for '
                'other backbones.')
        head_type = type(self.decode_head)
        if getattr(head_type, 'loss', None) is not BaseDecodeHead.loss:
            # The losses need the logits of both stages for distillation, so
            # they come from forward and loss_by_feat, which heads with a
            # loss of their own (MaskFormer, Mask2Former, PointRend) skip.
            raise TypeError(
                'ScopeEncoderDecoder trains decode heads whose loss is '
                "BaseDecodeHead's (forward, then loss_by_feat), such as "
                f'UPerHead or FCNHead; {head_type.__name__} has a loss of its '
                'own.')
        self.coarse_loss_weight = checked_loss_weight(coarse_loss_weight,
                                                      'coarse_loss_weight')
        self.distill_loss_weight = checked_loss_weight(
            distill_loss_weight, 'distill_loss_weight')
        # Backbone records of each encode_decode call, collected only while
        # predict runs.
        self._call_records: Optional[List[List[dict]]] = None

    def _head_losses(self, feats, data_samples: SampleList):
        """Decode and auxiliary losses of one set of maps, and the logits."""
        if self.with_neck:
            feats = self.neck(feats)
        logits = self.decode_head.forward(feats)
        losses = add_prefix(
            self.decode_head.loss_by_feat(logits, data_samples), 'decode')
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats, data_samples))
        return losses, logits

    def loss(self, inputs: torch.Tensor, data_samples: SampleList) -> dict:
        """Compute fine, coarse, gate and distillation losses."""
        scope = self.backbone(inputs, scope_output=True, with_coarse_maps=True)

        losses, fine_logits = self._head_losses(scope.maps, data_samples)
        coarse_losses, coarse_logits = self._head_losses(
            scope.coarse_maps, data_samples)
        losses.update(
            prefix_and_weight(coarse_losses, 'coarse_',
                              self.coarse_loss_weight))

        ignore_index = self.decode_head.ignore_index
        label_sets = [
            present_labels(sample.gt_sem_seg.data, ignore_index)
            for sample in data_samples
        ]
        gate_head = self.backbone.gate_head
        losses['loss_gate'] = gate_head.loss(
            scope.gate_logits, gate_targets(gate_head, label_sets))

        if self.distill_loss_weight > 0:
            losses['loss_distill'] = self.distill_loss_weight * \
                pixel_kl_divergence(fine_logits, coarse_logits)
        return losses

    def encode_decode(self, inputs: torch.Tensor,
                      batch_img_metas: List[dict]) -> torch.Tensor:
        """Encode and decode as ``EncoderDecoder``, keeping the records."""
        logits = super().encode_decode(inputs, batch_img_metas)
        if self._call_records is not None:
            self._call_records.append(list(self.backbone.scope_info))
        return logits

    def predict(self, inputs: torch.Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Predict as ``EncoderDecoder`` and attach the scope records.

        With ``test_cfg`` mode ``'whole'`` each prediction gets the
        backbone's record of its image. With mode ``'slide'`` the backbone
        runs once per window, and the record merges the windows: see
        :func:`merge_window_records`.
        """
        self._call_records = []
        try:
            results = super().predict(inputs, data_samples)
            calls = [
                records for records in self._call_records
                if len(records) == len(results)
            ]
        finally:
            self._call_records = None

        if calls:
            for index, sample in enumerate(results):
                windows = [records[index] for records in calls]
                sample.set_metainfo(
                    dict(scope=merge_window_records(windows)))
        return results


def merge_window_records(windows: List[dict]) -> dict:
    """Merge the backbone records of the windows of one image.

    Args:
        windows: The records of one image, one per backbone call.

    Returns:
        The only record when there is one window. Otherwise a record with
        ``stopped`` (True when every window stopped at the gate),
        ``backbone_gflops`` and ``vim_gflops`` (sums over the windows),
        ``num_windows``, ``refined_windows`` and ``windows`` (the records).
    """
    if len(windows) == 1:
        return windows[0]
    return dict(
        stopped=all(window['stopped'] for window in windows),
        backbone_gflops=sum(window['backbone_gflops'] for window in windows),
        vim_gflops=sum(window['vim_gflops'] for window in windows),
        num_windows=len(windows),
        refined_windows=sum(not window['stopped'] for window in windows),
        windows=windows)
