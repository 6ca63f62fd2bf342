"""Gate head of MambaScope: decides from the coarse tokens whether to stop."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mmscope.models.utils.loss_weight import checked_loss_weight
from mmscope.models.utils.whole_number import is_whole_number
from mmscope.registry import register_model

GATE_MODES = ('multilabel', 'softmax')
CONFIDENCE_REDUCTIONS = ('min', 'mean')


@register_model
class ScopeGateHead(BaseModule):
    """Classify an image from its coarse tokens and rate the confidence.

    LayerNorm, mean over tokens, then a linear layer to ``num_classes``
    logits. The training targets come from the ground truth of the dense
    task: which classes are present in the image.

    Args:
        in_channels: Token width C.
        num_classes: Number of classes of the dense task.
        mode: ``'multilabel'`` trains one binary presence classifier per
            class with binary cross-entropy. The confidence of an image is
            then the minimum (or mean, see ``confidence``) over classes of
            ``max(p, 1 - p)``. ``'softmax'`` trains a softmax classifier on
            the dominant class (most pixels or instances); the confidence is
            the maximum softmax probability.
        confidence: ``'min'`` or ``'mean'`` reduction over classes in
            ``'multilabel'`` mode.
        loss_weight: Weight of the gate loss.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 mode: str = 'multilabel',
                 confidence: str = 'min',
                 loss_weight: float = 1.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in GATE_MODES:
            raise ValueError(f'Invalid gate mode {mode!r}; choose one of '
                             f'{GATE_MODES}.')
        if confidence not in CONFIDENCE_REDUCTIONS:
            raise ValueError(f'Invalid confidence reduction {confidence!r}; '
                             f'choose one of {CONFIDENCE_REDUCTIONS}.')
        for name, value in (('in_channels', in_channels),
                            ('num_classes', num_classes)):
            if not is_whole_number(value) or value < 1:
                raise ValueError(f'gate_head.{name} must be a whole number '
                                 f'of at least 1, got {value!r}.')
        if mode == 'softmax' and num_classes < 2:
            raise ValueError(
                "gate_head.num_classes must be at least 2 in 'softmax' mode, "
                'because a softmax over one class gives a confidence of 1 to '
                "every image; use mode='multilabel'.")
        if mode == 'softmax' and confidence != 'min':
            raise ValueError(
                f"gate_head.confidence={confidence!r} applies to "
                "'multilabel' mode only; in 'softmax' mode the confidence is "
                'the largest probability. Leave confidence out.')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.mode = mode
        self.confidence_reduction = confidence
        self.loss_weight = checked_loss_weight(loss_weight,
                                               'gate_head.loss_weight')
        self.norm = nn.LayerNorm(in_channels)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return class logits (batch, num_classes) for tokens (batch, L, C).

        The normalisation and the pooling run in float32, whatever the
        dtype of the tokens and of the weights.
        """
        normed = F.layer_norm(tokens.float(), self.norm.normalized_shape,
                              self.norm.weight.float(),
                              self.norm.bias.float(), self.norm.eps)
        return F.linear(normed.mean(dim=1), self.fc.weight.float(),
                        self.fc.bias.float())

    def confidence(self, logits: torch.Tensor) -> torch.Tensor:
        """Return the confidence of each image, in [0, 1], shape (batch,)."""
        logits = logits.float()
        if self.mode == 'softmax':
            return logits.softmax(dim=-1).max(dim=-1).values

        probs = logits.sigmoid()
        certainty = torch.maximum(probs, 1 - probs)
        if self.confidence_reduction == 'mean':
            return certainty.mean(dim=-1)
        return certainty.min(dim=-1).values

    def targets_from_labels(self, labels: Sequence[torch.Tensor],
                            counts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Build the training targets of a batch.

        Args:
            labels: Per image, the class indices present (any order).
            counts: Per image, the pixel or instance count of each entry of
                ``labels``, used to find the dominant class.

        Returns:
            Float presence vectors (batch, num_classes) in ``'multilabel'``
            mode, or the dominant class indices (batch,) in ``'softmax'``
            mode (-100, ignored, for an image without labels).
        """
        for image_labels in labels:
            if image_labels.numel() and (
                    int(image_labels.max()) >= self.num_classes
                    or int(image_labels.min()) < 0):
                raise ValueError(
                    f'Gate target labels {sorted(image_labels.tolist())} '
                    f'fall outside 0..{self.num_classes - 1}; set '
                    'gate_head.num_classes to the number of classes of the '
                    'dataset.')

        if self.mode == 'multilabel':
            presence = torch.zeros(len(labels), self.num_classes)
            for row, image_labels in enumerate(labels):
                presence[row, image_labels.long()] = 1.0
            return presence

        dominant = torch.full((len(labels), ), -100, dtype=torch.long)
        for row, (image_labels, image_counts) in enumerate(zip(labels, counts)):
            if image_labels.numel():
                dominant[row] = image_labels[image_counts.argmax()].long()
        return dominant

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the weighted gate loss for targets from
        :meth:`targets_from_labels`."""
        targets = targets.to(logits.device)
        if self.mode == 'multilabel':
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        elif torch.all(targets < 0):
            loss = logits.sum() * 0.0
        else:
            loss = F.cross_entropy(logits.float(), targets, ignore_index=-100)
        return self.loss_weight * loss
