"""Wall-clock timing of model calls on CPU and CUDA."""
import time
from typing import Callable, Dict, Hashable, List

import torch


def time_call(function: Callable[[], object], device: str) -> float:
    """Run ``function`` once and return its duration in seconds.

    On CUDA the time is taken with CUDA events around the call, so it covers
    the kernels the call queued; on CPU with ``time.perf_counter``.
    """
    if device.startswith('cuda'):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000

    start_time = time.perf_counter()
    function()
    return time.perf_counter() - start_time


def measure_interleaved(functions: Dict[Hashable, Callable[[], object]],
                        runs: int, warmup: int,
                        device: str) -> Dict[Hashable, List[float]]:
    """Time several calls in turn, so drift of the machine hits all alike.

    Each round calls every function once, in the given order. The first
    ``warmup`` rounds are discarded.

    Args:
        functions: Calls to time, by name.
        runs: Number of timed rounds, at least 1.
        warmup: Number of untimed rounds before them.
        device: ``'cpu'`` or a CUDA device.

    Returns:
        Per name, the duration of each timed round in seconds.
    """
    if runs < 1:
        raise ValueError(f'runs must be at least 1, got {runs}.')
    if warmup < 0:
        raise ValueError(f'warmup must be 0 or more, got {warmup}.')
    times: Dict[Hashable, List[float]] = {name: [] for name in functions}
    for round_index in range(warmup + runs):
        for name, function in functions.items():
            duration = time_call(function, device)
            if round_index >= warmup:
                times[name].append(duration)
    return times


def profile_call(function: Callable[[], object], device: str,
                 row_limit: int) -> str:
    """Run ``function`` once under ``torch.profiler`` and tabulate its ops.

    Args:
        function: Call to profile.
        device: ``'cpu'`` or a CUDA device; CUDA adds kernel times.
        row_limit: Number of operators listed, the most expensive first.

    Returns:
        The operator table of ``torch.profiler``, sorted by self time.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    sort_by = 'self_cpu_time_total'
    if device.startswith('cuda'):
        activities.append(ProfilerActivity.CUDA)
        sort_by = 'self_cuda_time_total'
    with profile(activities=activities) as profiler:
        function()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
    return profiler.key_averages().table(sort_by=sort_by,
                                         row_limit=row_limit)
