"""Metric that reports how much MambaScope refined and what it cost."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmscope.registry import register_metric


@register_metric
class ScopeMetric(BaseMetric):
    """Share of refined images and mean backbone GFLOPs per image.

    It reads the ``scope`` record that ``ScopeEncoderDecoder`` and
    ``ScopeMaskRCNN`` put in each prediction's metainfo. GFLOPs are counted
    analytically (one multiply-accumulate counts as one operation, see
    :mod:`mmscope.models.utils.flops`), for the image on its own path and for
    the Vim baseline backbone at the same input size. An image predicted in
    sliding windows counts as refined when any of its windows was refined,
    and its GFLOPs are the sums over its windows.

    Reported keys (with the default prefix ``scope``): ``refine_share``,
    ``backbone_gflops``, ``vim_gflops`` and ``gflops_ratio`` (MambaScope over
    Vim).

    Args:
        collect_device: Device used to collect results across processes.
        prefix: Prefix of the metric names.
    """

    default_prefix: Optional[str] = 'scope'

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            record = sample.get('scope')
            if record is None:
                raise KeyError(
                    'A prediction has no scope record in its metainfo. '
                    'ScopeMetric needs a ScopeEncoderDecoder or ScopeMaskRCNN '
                    'model with a MambaScope backbone.')
            self.results.append(
                dict(refined=not record['stopped'],
                     backbone_gflops=record['backbone_gflops'],
                     vim_gflops=record['vim_gflops']))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        # MMEngine has already warned about an empty evaluation: report
        # nothing rather than means of nothing.
        if not results:
            return {}
        refined = np.array([r['refined'] for r in results], dtype=np.float64)
        gflops = np.array([r['backbone_gflops'] for r in results])
        vim = np.array([r['vim_gflops'] for r in results])
        return dict(
            refine_share=float(refined.mean()),
            backbone_gflops=float(gflops.mean()),
            vim_gflops=float(vim.mean()),
            gflops_ratio=float(gflops.mean() / vim.mean()))
