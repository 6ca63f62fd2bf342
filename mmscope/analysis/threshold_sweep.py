"""Quality and compute of a MambaScope model over a grid of gate thresholds.

One pass over the data keeps, for every image, its gate confidence and the
metric entries of both its coarse-path and its fine-path prediction. Any
threshold then selects one of the two per image, exactly as the backbone
would at that threshold, so the metrics of every threshold are computed
without running the model again.
"""
import copy
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.registry import Registry
from mmengine.utils import ProgressBar
from torch import nn

from mmscope.models.backbones import refine_by_threshold
from mmscope.models.utils.share_count import round_share
from mmscope.utils.log_level import current_logger_level

from .backbone_override import fixed_backbone_output


@dataclass
class ImagePaths:
    """Both predictions of one image, as metric entries.

    Attributes:
        img_path: Path of the image file, or ``None`` if the data sample
            has none.
        confidence: Gate confidence of the image.
        coarse: Per metric, the entries its ``process`` appended for the
            coarse-path prediction.
        fine: The same for the fine-path prediction.
        coarse_record: Scope record of the image stopping after the coarse
            stage.
        fine_record: Scope record of the image refined.
    """

    img_path: Optional[str]
    confidence: float
    coarse: List[list]
    fine: List[list]
    coarse_record: dict
    fine_record: dict


def _check_sweep_settings(backbone_name: str, has_scope: bool,
                          refine_budget: Optional[float],
                          test_cfg: Optional[dict]) -> None:
    """Raise if these model settings cannot be swept over thresholds."""
    if not has_scope:
        raise TypeError(
            f'The model has a {backbone_name} backbone; the threshold sweep '
            'needs a MambaScope backbone.')
    if refine_budget is not None:
        raise ValueError(
            f'The backbone sets refine_budget={refine_budget}, which '
            'replaces the gate threshold; set '
            'model.backbone.refine_budget=None to sweep thresholds.')
    mode = (test_cfg or {}).get('mode', 'whole')
    if mode != 'whole':
        raise ValueError(
            f'test_cfg mode {mode!r} runs the backbone once per window; the '
            "sweep supports mode='whole' only.")


def check_sweep_model(model: nn.Module) -> None:
    """Raise if ``model`` cannot be swept over gate thresholds."""
    backbone = getattr(model, 'backbone', None)
    _check_sweep_settings(type(backbone).__name__,
                          hasattr(backbone, 'forward_scope'),
                          getattr(backbone, 'refine_budget', None),
                          getattr(model, 'test_cfg', None))


def check_sweep_config(model_cfg: dict, models_registry: Registry) -> None:
    """Raise if the model of a config cannot be swept over gate thresholds.

    It runs the checks of :func:`check_sweep_model` on the config, before
    anything is built.

    Args:
        model_cfg: The config's ``model`` entry.
        models_registry: Model registry of the config's default scope.
    """
    backbone_cfg = model_cfg.get('backbone') or {}
    backbone_type = backbone_cfg.get('type')
    backbone_class = models_registry.get(backbone_type) if isinstance(
        backbone_type, str) else backbone_type
    _check_sweep_settings(str(backbone_type),
                          hasattr(backbone_class, 'forward_scope'),
                          backbone_cfg.get('refine_budget'),
                          model_cfg.get('test_cfg'))


def stopped_record(backbone: nn.Module, record: dict) -> dict:
    """Return the scope record of an image that stops after the coarse stage.

    Args:
        backbone: The MambaScope backbone that produced ``record``.
        record: Record of the same image refined.
    """
    macs = backbone.scope_macs(tuple(record['coarse_grid']),
                               tuple(record['fine_grid']), 0)
    return dict(record, stopped=True, refine_ratio=0.0, selected_cells=[],
                num_fine_tokens=0, backbone_gflops=macs / 1e9)


def _metric_entries(metric: BaseMetric, data_batch, samples: list) -> list:
    """Run ``metric.process`` on samples and take back the new entries."""
    start = len(metric.results)
    metric.process(data_batch, [sample.to_dict() for sample in samples])
    entries = metric.results[start:]
    del metric.results[start:]
    return entries


def _predict_on_maps(model: nn.Module, inputs: torch.Tensor,
                     data_samples: list, maps, records: List[dict]) -> list:
    """Predict with the neck and heads on given maps; attach ``records``."""
    samples = copy.deepcopy(data_samples)
    with fixed_backbone_output(model, maps):
        results = model.predict(inputs, samples)
    for sample, record in zip(results, records):
        sample.set_metainfo(dict(scope=record))
    return results


@contextmanager
def _refine_every_image(backbone: nn.Module) -> Iterator[None]:
    saved = backbone.refine_budget
    backbone.refine_budget = 1.0
    try:
        yield
    finally:
        backbone.refine_budget = saved


def collect_paths(model: nn.Module, dataloader,
                  metrics: Sequence[BaseMetric],
                  show_progress: bool = True) -> List[ImagePaths]:
    """Run every image once and keep both of its predictions.

    Each batch runs the coarse stage and the fine stage of every image in
    one MambaScope pass. The neck and heads then run twice, on the fine-path
    maps and on the coarse-path maps.

    Args:
        model: Segmentor or detector with a MambaScope backbone, in
            evaluation mode.
        dataloader: Test data loader.
        metrics: Metrics to feed, with their ``dataset_meta`` set.
        show_progress: Draw a progress bar on stdout.

    Returns:
        One entry per image, in data loader order.
    """
    check_sweep_model(model)
    backbone = model.backbone
    progress = ProgressBar(len(dataloader.dataset)) if show_progress else None
    images: List[ImagePaths] = []
    for data_batch in dataloader:
        data = model.data_preprocessor(data_batch, False)
        inputs, data_samples = data['inputs'], data['data_samples']
        with torch.no_grad(), _refine_every_image(backbone):
            scope = backbone(inputs, scope_output=True, with_coarse_maps=True)
            fine_records = scope.info
            coarse_records = [
                stopped_record(backbone, record) for record in fine_records
            ]
            fine = _predict_on_maps(model, inputs, data_samples, scope.maps,
                                    fine_records)
            coarse = _predict_on_maps(model, inputs, data_samples,
                                      scope.coarse_maps, coarse_records)

        for index in range(len(fine)):
            images.append(
                ImagePaths(
                    img_path=fine[index].metainfo.get('img_path'),
                    confidence=float(scope.confidence[index]),
                    coarse=[
                        _metric_entries(metric, data_batch, [coarse[index]])
                        for metric in metrics
                    ],
                    fine=[
                        _metric_entries(metric, data_batch, [fine[index]])
                        for metric in metrics
                    ],
                    coarse_record=coarse_records[index],
                    fine_record=fine_records[index]))
            if progress is not None:
                progress.update()
    if progress is not None:
        # The progress bar leaves the cursor on its own line.
        progress.file.write('\n')
    return images


@contextmanager
def _quiet_logger() -> Iterator[None]:
    """Hide the INFO tables metrics log for every threshold."""
    with current_logger_level(logging.WARNING):
        yield


def _prefixed(metric: BaseMetric, values: Dict[str, float]) -> dict:
    """Name metric values as ``Evaluator`` does, with the metric's prefix."""
    if not metric.prefix:
        return dict(values)
    return {f'{metric.prefix}/{key}': value for key, value in values.items()}


def evaluate_threshold(images: Sequence[ImagePaths],
                       metrics: Sequence[BaseMetric],
                       threshold: float) -> Dict[str, float]:
    """Compute the metrics and the compute of one gate threshold.

    Args:
        images: Output of :func:`collect_paths`.
        metrics: The metrics that produced the entries.
        threshold: Gate threshold eta.

    Returns:
        ``threshold``, ``refine_share``, ``backbone_gflops`` (mean per
        image), ``vim_gflops``, ``gflops_ratio`` and every metric value,
        named as the test loop names them.
    """
    confidence = torch.tensor([image.confidence for image in images])
    refined = refine_by_threshold(confidence, threshold).tolist()
    records = [
        image.fine_record if chosen else image.coarse_record
        for image, chosen in zip(images, refined)
    ]
    gflops = np.mean([record['backbone_gflops'] for record in records])
    vim_gflops = np.mean([record['vim_gflops'] for record in records])
    row = dict(threshold=float(threshold),
               refine_share=float(np.mean(refined)),
               backbone_gflops=float(gflops), vim_gflops=float(vim_gflops),
               gflops_ratio=float(gflops / vim_gflops))

    for metric_index, metric in enumerate(metrics):
        results = []
        for image, chosen in zip(images, refined):
            path = image.fine if chosen else image.coarse
            results.extend(copy.deepcopy(path[metric_index]))
        with _quiet_logger():
            row.update(_prefixed(metric, metric.compute_metrics(results)))
    return row


def _separating_threshold(lower: float, upper: float) -> float:
    """Return the shortest decimal ``t`` with ``lower < t <= upper``.

    An image whose confidence is ``lower`` is then refined and one at
    ``upper`` stops, also when the threshold is copied from a table that
    prints it with few digits. ``upper`` itself is returned when the two are
    equal.
    """
    if math.isnan(lower):
        return 0.0
    if not lower < upper:
        return upper
    middle = (lower + upper) / 2
    for digits in range(1, 18):
        candidate = float(f'{middle:.{digits}g}')
        if lower < candidate <= upper:
            return candidate
    return upper


def thresholds_for_shares(images: Sequence[ImagePaths],
                          steps: int) -> List[float]:
    """Return thresholds that refine 0, 1/steps, ..., 1 of the images.

    For share k/steps, ``n_k`` is ``k / steps`` of the n images, rounded half
    up as ``refine_budget`` rounds. The threshold is the shortest decimal
    between the ``n_k``-th and the next confidence in increasing order, so
    exactly ``n_k`` images fall below it unless several images share that
    confidence. A NaN confidence counts as the lowest, because such an
    image is always refined.

    Args:
        images: Output of :func:`collect_paths`.
        steps: Number of share intervals, at least 1.

    Returns:
        ``steps + 1`` thresholds, from 0 to 1.
    """
    if steps < 1:
        raise ValueError(f'steps must be at least 1, got {steps}.')
    values = [image.confidence for image in images]
    confidences = [value for value in values if math.isnan(value)] + sorted(
        value for value in values if not math.isnan(value))
    thresholds = [0.0]
    for k in range(1, steps):
        count = round_share(Fraction(k, steps), len(confidences))
        if count == 0:
            thresholds.append(0.0)
        elif count >= len(confidences):
            thresholds.append(1.0)
        else:
            thresholds.append(_separating_threshold(confidences[count - 1],
                                                    confidences[count]))
    thresholds.append(1.0)
    return thresholds


def sweep_thresholds(images: Sequence[ImagePaths],
                     metrics: Sequence[BaseMetric],
                     thresholds: Sequence[float]) -> List[Dict[str, float]]:
    """Evaluate every threshold of the grid; see :func:`evaluate_threshold`."""
    if not images:
        raise ValueError('The data loader gave no images to sweep over.')
    rows = []
    for threshold in thresholds:
        rows.append(evaluate_threshold(images, metrics, threshold))
        print_log(
            f'threshold {threshold!r}: refine share '
            f"{rows[-1]['refine_share']:.3f}, backbone GFLOPs "
            f"{rows[-1]['backbone_gflops']:.3f}", logger='current')
    return rows
