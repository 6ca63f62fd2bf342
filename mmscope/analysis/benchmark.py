"""Compute and latency benchmark of segmentors and detectors.

One row per model and forced refine share gives the parameters, the analytic
backbone GFLOPs and the whole-model GFLOPs, whose neck and heads MMEngine
counts. Latency is that of the tensor-mode forward. It excludes data loading
and post-processing such as resizing logits or pasting masks.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
from torch import nn

from .latency import measure_interleaved, profile_call
from .model_cost import (backbone_macs_per_image, count_parameters,
                         neck_and_head_macs)


@dataclass
class BenchmarkRow:
    """Figures of one model at one refine share.

    Attributes:
        name: Model name, usually the config file's stem.
        refine_share: Measured share of refined images; ``None`` for a
            backbone without a coarse-to-fine path.
        params: Number of parameters of the whole model.
        backbone_gflops: Analytic backbone GFLOPs per image (1e9 MACs).
        model_gflops: Backbone plus neck and heads, GFLOPs per image.
        batch_size: Images per timed forward pass.
        latencies: Duration of each timed forward pass in seconds.
        backbone_latencies: Duration of each timed backbone pass alone.
        profile: Operator table of one profiled forward pass, or ``None``.
        rois_per_image: Proposals per image that a detector's RoI heads ran
            on while the FLOPs were counted; ``None`` for a segmentor.
    """

    name: str
    refine_share: Optional[float]
    params: int
    backbone_gflops: float
    model_gflops: float
    batch_size: int
    latencies: List[float] = field(default_factory=list)
    backbone_latencies: List[float] = field(default_factory=list)
    profile: Optional[str] = None
    rois_per_image: Optional[float] = None

    @property
    def latency_ms(self) -> float:
        """Median latency per image in milliseconds."""
        return float(np.median(self.latencies)) * 1000 / self.batch_size

    @property
    def backbone_latency_ms(self) -> float:
        """Median latency of the backbone alone per image in milliseconds."""
        return float(np.median(self.backbone_latencies)) * 1000 / \
            self.batch_size

    @property
    def spread_ms(self) -> float:
        """Interquartile range of the latency per image in milliseconds."""
        low, high = np.percentile(self.latencies, [25, 75])
        return float(high - low) * 1000 / self.batch_size

    @property
    def images_per_second(self) -> float:
        """Throughput at the median latency."""
        return 1000 / self.latency_ms


def check_refine_shares(shares: Sequence[float], batch_size: int) -> None:
    """Reject shares outside [0, 1] or not a whole number of images.

    The budget mode rounds ``share * batch_size`` to whole images, so a share
    the batch cannot hold exactly would be measured as another share.
    """
    for share in shares:
        if not 0 <= share <= 1:
            raise ValueError(f'Refine share {share} is outside [0, 1].')
        images = share * batch_size
        if not math.isclose(images, round(images), abs_tol=1e-9):
            raise ValueError(
                f'Refine share {share} of a batch of {batch_size} is '
                f'{images:g} images; choose a batch size that makes '
                'share x batch size a whole number (for example 2 for 0.5).')


def is_scope_model(model: nn.Module) -> bool:
    """Return True when the model's backbone has a coarse-to-fine path."""
    return hasattr(model.backbone, 'forward_scope')


def _tensor_forward(model: nn.Module, inputs: torch.Tensor,
                    data_samples: list, share: Optional[float],
                    backbone_only: bool) -> Callable[[], object]:
    """Return a call running the model's tensor mode at a refine share."""

    def call():
        if share is not None:
            model.backbone.refine_budget = share
        with torch.no_grad():
            if backbone_only:
                return model.backbone(inputs)
            return model(inputs, data_samples, mode='tensor')

    return call


@contextmanager
def counted_rois(model: nn.Module) -> Iterator[List[int]]:
    """Record how many RoIs the box head of a detector receives per call.

    Args:
        model: A segmentor or detector.

    Yields:
        A list that receives the RoI count of each call of
        ``model.roi_head.bbox_head``; it stays empty for other models.
    """
    counts: List[int] = []
    bbox_head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    if not isinstance(bbox_head, nn.Module):
        yield counts
        return

    def record(module, args, output):
        counts.append(int(args[0].shape[0]))

    handle = bbox_head.register_forward_hook(record)
    try:
        yield counts
    finally:
        handle.remove()


def count_row(name: str, model: nn.Module, inputs: torch.Tensor,
              data_samples: list, share: Optional[float]) -> BenchmarkRow:
    """Count parameters and GFLOPs of one model at one refine share.

    Args:
        name: Row name.
        model: Segmentor or detector in evaluation mode.
        inputs: Preprocessed images (batch, 3, H, W).
        data_samples: Their data samples.
        share: Refine share forced with the budget mode; ``None`` for a
            model without a coarse-to-fine path.

    Returns:
        The row, without latencies.
    """
    if share is not None:
        model.backbone.refine_budget = share
    batch_size = inputs.shape[0]
    with torch.no_grad():
        maps = model.backbone(inputs)
    backbone_macs = backbone_macs_per_image(model.backbone,
                                            tuple(inputs.shape[-2:]),
                                            batch_size)
    measured_share = None
    if share is not None:
        records = model.backbone.scope_info
        measured_share = sum(not r['stopped'] for r in records) / batch_size

    with torch.no_grad(), counted_rois(model) as rois:
        head_macs = neck_and_head_macs(model, inputs, maps, data_samples)
    backbone_gflops = sum(backbone_macs) / batch_size / 1e9
    return BenchmarkRow(
        name=name,
        refine_share=measured_share,
        params=count_parameters(model),
        backbone_gflops=backbone_gflops,
        model_gflops=backbone_gflops + head_macs / batch_size / 1e9,
        batch_size=batch_size,
        rois_per_image=rois[-1] / batch_size if rois else None)


def run_benchmark(models: Sequence[Tuple[str, nn.Module]],
                  shares: Sequence[float], inputs: torch.Tensor,
                  data_samples: list, runs: int, warmup: int,
                  device: str,
                  profile_rows: int = 0) -> List[BenchmarkRow]:
    """Count and time every model, at every share for MambaScope models.

    Latencies of all rows are measured in interleaved rounds, so that
    changes in the machine's load affect every row alike.

    Args:
        models: (name, model) pairs in evaluation mode on ``device``.
        shares: Refine shares forced on models with a MambaScope backbone.
        inputs: Preprocessed images on ``device``.
        data_samples: Their data samples.
        runs: Timed forward passes per row.
        warmup: Untimed forward passes per row before them.
        device: ``'cpu'`` or a CUDA device.
        profile_rows: If above 0, profile one more forward pass of each row
            with ``torch.profiler`` and keep this many operators.

    Returns:
        One row per model and share, in the order given.
    """
    if any(is_scope_model(model) for _, model in models):
        check_refine_shares(shares, inputs.shape[0])
    rows: List[BenchmarkRow] = []
    calls: Dict[Tuple[int, str], Callable[[], object]] = {}
    # Each model's own budget, saved before any row forces one.
    saved_budgets = {
        id(model): (model, model.backbone.refine_budget)
        for _, model in models if is_scope_model(model)
    }
    try:
        for name, model in models:
            row_shares = list(shares) if is_scope_model(model) else [None]
            for share in row_shares:
                for part in ('model', 'backbone'):
                    calls[(len(rows), part)] = _tensor_forward(
                        model, inputs, data_samples, share,
                        part == 'backbone')
                rows.append(
                    count_row(name, model, inputs, data_samples, share))

        times = measure_interleaved(calls, runs, warmup, device)
        if profile_rows > 0:
            for index, row in enumerate(rows):
                row.profile = profile_call(calls[(index, 'model')], device,
                                           profile_rows)
    finally:
        for model, budget in saved_budgets.values():
            model.backbone.refine_budget = budget
    for index, row in enumerate(rows):
        row.latencies = times[(index, 'model')]
        row.backbone_latencies = times[(index, 'backbone')]
    return rows


def noise_warnings(rows: Sequence[BenchmarkRow],
                   max_spread: float = 0.1) -> List[str]:
    """Describe rows whose latencies look too noisy to compare.

    Args:
        rows: Rows from :func:`run_benchmark`.
        max_spread: Largest accepted interquartile range, as a share of
            the median latency.

    Returns:
        One sentence per noisy row; empty when every row looks stable.
    """
    warnings = []
    for row in rows:
        share = '' if row.refine_share is None else (
            f' at refine share {row.refine_share:g}')
        label = f'{row.name}{share}'
        if row.spread_ms > max_spread * row.latency_ms:
            warnings.append(
                f'{label}: the interquartile range of the latency is '
                f'{row.spread_ms / row.latency_ms:.0%} of the median; rerun '
                'with more --runs or on an idle machine.')
        if row.backbone_latency_ms > row.latency_ms:
            warnings.append(
                f'{label}: the backbone alone measured slower than the '
                'whole model, so the machine was busy; rerun with more '
                '--runs or on an idle machine.')
    return warnings


def proposal_warnings(rows: Sequence[BenchmarkRow],
                      baseline: Optional[BenchmarkRow],
                      tolerance: float = 0.05) -> List[str]:
    """Describe detector rows whose RoI heads ran on other proposal counts.

    The cost of a detector's RoI heads grows with the number of proposals,
    which depends on the weights. Whole-model ratios of such rows compare
    different amounts of work.

    Args:
        rows: Rows from :func:`run_benchmark`.
        baseline: Reference row of the ratio columns, or ``None``.
        tolerance: Largest accepted difference, as a share of the
            baseline's proposals per image.

    Returns:
        One sentence per row whose proposals differ; empty otherwise.
    """
    if baseline is None or baseline.rois_per_image is None:
        return []
    reference = baseline.rois_per_image
    warnings = []
    for row in rows:
        if row.rois_per_image is None or abs(
                row.rois_per_image - reference) <= tolerance * reference:
            continue
        share = '' if row.refine_share is None else (
            f' at refine share {row.refine_share:g}')
        warnings.append(
            f'{row.name}{share}: the RoI heads ran on '
            f'{row.rois_per_image:g} proposals per image, the baseline\'s on '
            f'{reference:g}, so its whole-model FLOPs and latency ratios '
            'compare different work. Compare the backbone ratios, or run '
            'both models with the weights their constructors set (no '
            'checkpoints).')
    return warnings


def _gflops_cell(value: float) -> str:
    """Format GFLOPs with two decimals, or three digits below 0.1."""
    return f'{value:.2f}' if value >= 0.1 else f'{value:.3g}'


def _ratio_cells(value: float, reference: float, latency: float,
                 reference_latency: float) -> List[str]:
    """Format a FLOPs ratio, a latency ratio and their quotient."""
    flops_ratio = value / reference
    latency_ratio = latency / reference_latency
    return [f'{flops_ratio:.3f}', f'{latency_ratio:.3f}',
            f'{latency_ratio / flops_ratio:.3f}']


def format_table(rows: Sequence[BenchmarkRow],
                 baseline: Optional[BenchmarkRow] = None) -> str:
    """Format rows as a markdown table with ratios to ``baseline``.

    The whole-model ratios compare model GFLOPs and latency, the backbone
    ratios backbone GFLOPs and the latency of the backbone alone. A quotient
    above 1 means the latency saves less than the FLOPs promise.

    Args:
        rows: Rows from :func:`run_benchmark`.
        baseline: Reference row of the ratio columns; without it they
            show ``-``.

    Returns:
        The table, one line per row, ending with a newline.
    """
    columns = [
        'Model', 'Refine share', 'Params (M)', 'Backbone GFLOPs',
        'Model GFLOPs', 'Latency (ms/img)', 'IQR (ms)', 'img/s',
        'Backbone latency (ms/img)', 'FLOPs ratio', 'Latency ratio',
        'Latency ratio / FLOPs ratio', 'Backbone FLOPs ratio',
        'Backbone latency ratio', 'Backbone latency ratio / FLOPs ratio'
    ]
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        share = '-' if row.refine_share is None else f'{row.refine_share:g}'
        cells = [
            row.name, share, f'{row.params / 1e6:.2f}',
            _gflops_cell(row.backbone_gflops),
            _gflops_cell(row.model_gflops),
            f'{row.latency_ms:.1f}', f'{row.spread_ms:.1f}',
            f'{row.images_per_second:.2f}', f'{row.backbone_latency_ms:.1f}'
        ]
        if baseline is None:
            cells += ['-'] * 6
        else:
            cells += _ratio_cells(row.model_gflops, baseline.model_gflops,
                                  row.latency_ms, baseline.latency_ms)
            cells += _ratio_cells(row.backbone_gflops,
                                  baseline.backbone_gflops,
                                  row.backbone_latency_ms,
                                  baseline.backbone_latency_ms)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
