"""Loss helpers shared by the MambaScope training wrappers."""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F


def present_labels(label_map: torch.Tensor,
                   ignore_index: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the classes present in a label map and their pixel counts.

    Args:
        label_map: Integer label map of any shape.
        ignore_index: Label excluded from the result.

    Returns:
        The sorted class indices and the number of pixels of each.
    """
    labels, counts = torch.unique(label_map.flatten(), return_counts=True)
    keep = labels != ignore_index
    return labels[keep], counts[keep]


def present_instances(labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the instance classes of an image and their instance counts."""
    return torch.unique(labels, return_counts=True)


def prefix_and_weight(losses: Dict[str, torch.Tensor], prefix: str,
                      weight: float) -> Dict[str, torch.Tensor]:
    """Prefix every key and scale the entries whose name contains ``loss``.

    Entries such as accuracies are renamed but not scaled, so that they stay
    readable in logs. The input dict is not modified.
    """
    result = {}
    for key, value in losses.items():
        if 'loss' in key:
            if isinstance(value, (list, tuple)):
                value = [item * weight for item in value]
            else:
                value = value * weight
        result[f'{prefix}{key}'] = value
    return result


def pixel_kl_divergence(teacher_logits: torch.Tensor,
                        student_logits: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of KL(teacher || student) on class softmaxes.

    Args:
        teacher_logits: (batch, classes, H, W); no gradient flows into it.
        student_logits: Same shape.

    Returns:
        A scalar tensor.
    """
    teacher = F.log_softmax(teacher_logits.detach().float(), dim=1)
    student = F.log_softmax(student_logits.float(), dim=1)
    per_pixel = (teacher.exp() * (teacher - student)).sum(dim=1)
    return per_pixel.mean()


def gate_targets(gate_head, label_sets: Sequence[Tuple[torch.Tensor,
                                                       torch.Tensor]]):
    """Build gate-head targets from per-image (labels, counts) pairs."""
    labels = [item[0].cpu() for item in label_sets]
    counts = [item[1].cpu() for item in label_sets]
    return gate_head.targets_from_labels(labels, counts)
