"""Benchmark the torch selective scan backend against the reference loop.

Times ``selective_scan(..., backend='torch')`` and ``selective_scan_ref`` on
the CPU in two cases: the forward pass under ``torch.no_grad()``, and the
forward plus backward pass. It prints the median times, their ratios, the
peak tensor memory of each case and whether the performance targets are
met. The exit status is 0 when both targets are met and 1 otherwise.

The inputs use every optional term (``D``, ``z``, ``delta_bias`` and
softplus), as the Vision Mamba mixer does.

Example:
    python tools/analysis/benchmark_scan.py --length 1024 --dim 768 \\
        --state 16 --batch 1 --runs 5 --warmup 1
"""
import argparse
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from mmscope.ops import selective_scan, selective_scan_ref

# The torch backend forward must take at most this multiple of the
# reference forward time.
FORWARD_MAX_RATIO = 1.2
# The torch backend forward plus backward must be at least this many times
# faster than the reference forward plus backward.
TRAINING_MIN_SPEEDUP = 20.0

LABELS = {
    'reference': 'reference (selective_scan_ref)',
    'torch': 'torch backend',
    'indexed': 'indexed loop',
}

Inputs = Dict[str, torch.Tensor]
Results = Dict[Tuple[str, str], Tuple[float, float]]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Time the torch selective scan backend against the '
        'sequential reference on the CPU.')

    parser.add_argument('--length', type=int, default=1024,
                        help='sequence length (default: 1024)')
    parser.add_argument('--dim', type=int, default=768,
                        help='number of channels (default: 768)')
    parser.add_argument('--state', type=int, default=16,
                        help='state size per channel (default: 16)')
    parser.add_argument('--batch', type=int, default=1,
                        help='batch size (default: 1)')

    parser.add_argument('--runs', type=int, default=5,
                        help='timed runs per case; the median is reported '
                        '(default: 5)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed runs per case before timing '
                        '(default: 1)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed of the inputs (default: 0)')

    parser.add_argument(
        '--indexed-baseline', action='store_true',
        help='also time a loop that precomputes the decays and inputs as '
        '(batch, dim, length, state) tensors and indexes one position per '
        'step. Its backward costs time quadratic in the length: one forward '
        'and backward took 38 s at the default sizes on a 2-core CPU')

    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error('--runs must be at least 1 and --warmup at least 0')
    return args


def make_inputs(args: argparse.Namespace) -> Inputs:
    """Build float32 scan inputs like those of a Vision Mamba layer."""
    generator = torch.Generator().manual_seed(args.seed)
    batch, dim, state, length = args.batch, args.dim, args.state, args.length

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    # A follows the S4D-Real initialization A[d, n] = -(n + 1).
    a_row = -torch.arange(1, state + 1, dtype=torch.float32)
    return {
        'u': normal(batch, dim, length),
        'delta': normal(batch, dim, length) * 0.5,
        'A': a_row.expand(dim, state).contiguous(),
        'B': normal(batch, state, length),
        'C': normal(batch, state, length),
        'D': torch.ones(dim),
        'z': normal(batch, dim, length),
        'delta_bias': normal(dim) * 0.5 - 3.0,
    }


def indexed_loop_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                      B: torch.Tensor, C: torch.Tensor, D: torch.Tensor,
                      z: torch.Tensor,
                      delta_bias: torch.Tensor) -> torch.Tensor:
    """Run the scan as a loop that indexes precomputed 4-D tensors.

    Autograd turns each index into a full-size zero tensor in the backward,
    so the backward costs time quadratic in the length. The softplus is
    always applied.
    """
    delta = F.softplus(delta + delta_bias[:, None])
    decays = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    drives = torch.einsum('bdl,bnl,bdl->bdln', delta, B, u)

    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    outputs = []
    for t in range(u.shape[2]):
        state = decays[:, :, t] * state + drives[:, :, t]
        outputs.append(torch.einsum('bdn,bn->bd', state, C[:, :, t]))
    y = torch.stack(outputs, dim=2)
    return (y + D[:, None] * u) * F.silu(z)


def torch_backend_scan(**inputs: torch.Tensor) -> torch.Tensor:
    """Run the torch backend with softplus."""
    return selective_scan(**inputs, delta_softplus=True, backend='torch')


def reference_scan(**inputs: torch.Tensor) -> torch.Tensor:
    """Run the sequential reference with softplus."""
    return selective_scan_ref(**inputs, delta_softplus=True)


def time_interleaved(runners: Dict[str, Callable[[], None]], runs: int,
                     warmup: int) -> Dict[str, float]:
    """Time several runners in turn and return the median of each.

    Each round calls every runner once, so a slow period of the machine
    affects all runners alike instead of only the one being timed.

    Returns:
        A dict from runner name to its median time in seconds.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()

    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            begin = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - begin)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_tensor_memory(run: Callable[[], None]) -> float:
    """Return the peak tensor memory that one call of ``run`` allocates.

    The profiler records every allocation and free of the PyTorch CPU
    allocator with its size. The peak is the maximum of their running sum,
    so it counts tensors only (not Python objects or the allocator cache)
    and is measured relative to the memory allocated before the call.

    Returns:
        The peak in MiB.
    """
    with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU],
            profile_memory=True) as profile:
        run()

    # kineto_results is not a documented API. It lists every allocation and
    # free as a '[memory]' event with its signed size, whereas the public
    # event list attributes most allocations to the operators.
    events = [
        event for event in profile.profiler.kineto_results.events()
        if event.name() == '[memory]'
    ]
    events.sort(key=lambda event: event.start_ns())
    allocated = 0
    peak = 0
    for event in events:
        allocated += event.nbytes()
        peak = max(peak, allocated)
    return peak / 2**20


def forward_runner(scan: Callable[..., torch.Tensor],
                   inputs: Inputs) -> Callable[[], None]:
    """Return a function that runs ``scan`` under ``torch.no_grad()``."""

    def run() -> None:
        with torch.no_grad():
            scan(**inputs)

    return run


def training_runner(scan: Callable[..., torch.Tensor], inputs: Inputs,
                    grad_out: torch.Tensor) -> Callable[[], None]:
    """Return a function that runs ``scan`` and its backward for all inputs.
    """
    leaves = {
        name: tensor.detach().clone().requires_grad_(True)
        for name, tensor in inputs.items()
    }

    def run() -> None:
        out = scan(**leaves)
        torch.autograd.grad(out, list(leaves.values()), grad_out)

    return run


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Return ||actual - expected|| / ||expected||."""
    return ((actual - expected).norm() / expected.norm()).item()


def print_header(args: argparse.Namespace) -> None:
    """Print the configuration of the benchmark."""
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{platform.machine()} {platform.processor() or ""}'.rstrip())
    print(f'batch={args.batch} dim={args.dim} state={args.state} '
          f'length={args.length} runs={args.runs} warmup={args.warmup} '
          f'seed={args.seed}, float32, D, z, delta_bias and softplus on')
    print('time: median over runs, implementations timed in turn. peak: '
          'maximum tensor memory allocated during one extra run, from '
          'torch.profiler memory events')
    print()


def measure_cases(args: argparse.Namespace, inputs: Inputs,
                  grad_out: torch.Tensor) -> Results:
    """Time each implementation and measure its peak memory.

    Returns:
        A dict from (implementation, phase) to (median seconds, peak MiB),
        where phase is 'forward' or 'training'.
    """
    results = {}
    for phase in ('forward', 'training'):
        if phase == 'forward':
            runners = {name: forward_runner(scan, inputs)
                       for name, scan in implementations(args)}
        else:
            runners = {name: training_runner(scan, inputs, grad_out)
                       for name, scan in implementations(args)}
        medians = time_interleaved(runners, args.runs, args.warmup)
        for name, run in runners.items():
            results[name, phase] = (medians[name], peak_tensor_memory(run))
    return results


def implementations(
        args: argparse.Namespace) -> List[Tuple[str, Callable[..., torch.Tensor]]]:
    """Return the implementations to time, by name."""
    scans = [('reference', reference_scan), ('torch', torch_backend_scan)]
    if args.indexed_baseline:
        scans.append(('indexed', indexed_loop_scan))
    return scans


def print_results(args: argparse.Namespace, results: Results) -> None:
    """Print the time and peak memory of every case."""
    for phase, title in [('forward', 'forward under no_grad'),
                         ('training', 'forward + backward')]:
        print(title + ':')
        for name, _ in implementations(args):
            seconds, peak_mib = results[name, phase]
            print(f'  {LABELS[name]:<32} {seconds:8.3f} s   '
                  f'peak {peak_mib:7.1f} MiB')
    print()


def check_targets(args: argparse.Namespace, results: Results) -> bool:
    """Print the ratios and the target results.

    Returns:
        Whether both targets against the reference are met. The speedup
        over the indexed loop is printed against the same target, but it
        does not decide the result.
    """
    forward_ratio = (results['torch', 'forward'][0] /
                     results['reference', 'forward'][0])
    forward_ok = forward_ratio <= FORWARD_MAX_RATIO
    print(f'forward: torch / reference = {forward_ratio:.3f} '
          f'(target <= {FORWARD_MAX_RATIO}): '
          f"{'PASS' if forward_ok else 'FAIL'}")

    training_ok = True
    for name, _ in implementations(args):
        if name == 'torch':
            continue
        speedup = results[name, 'training'][0] / results['torch',
                                                          'training'][0]
        passed = speedup >= TRAINING_MIN_SPEEDUP
        if name == 'reference':
            training_ok = passed
        print(f'forward + backward: {LABELS[name]} / torch = '
              f'{speedup:.1f}x (target >= {TRAINING_MIN_SPEEDUP:.0f}x): '
              f"{'PASS' if passed else 'FAIL'}")
    return forward_ok and training_ok


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and return 0 if both targets are met, else 1."""
    args = parse_args(argv)
    inputs = make_inputs(args)
    generator = torch.Generator().manual_seed(args.seed + 1)
    grad_out = torch.randn(args.batch, args.dim, args.length,
                           generator=generator)
    print_header(args)

    with torch.no_grad():
        error = relative_error(torch_backend_scan(**inputs),
                               reference_scan(**inputs))
    print(f'output relative error, torch backend vs reference: {error:.1e}')
    print()

    results = measure_cases(args, inputs, grad_out)
    print_results(args, results)
    return 0 if check_targets(args, results) else 1


if __name__ == '__main__':
    sys.exit(main())
