"""Check the selective scan and causal conv1d backends on a GPU.

On one CUDA device the script compares:

- the ``'cuda'`` backend (the mamba-ssm and causal-conv1d kernels) with the
  ``'torch'`` backend, for the output and the gradient of every input, in
  float32 and with bfloat16 and float16 inputs;
- the ``'torch'`` backend on the GPU with the same backend on the CPU;
- the ``'torch'`` backend with the pure-PyTorch reference functions that ship
  with the kernel packages (``selective_scan_ref`` of mamba-ssm and
  ``causal_conv1d_ref`` of causal-conv1d), with which the packages' own
  tests compare their kernels. These rows run on any device, the CPU included.

It then times both backends on the GPU at the sizes of a Vision Mamba-base
layer. It needs only PyTorch and, for the ``'cuda'`` backend, the kernels
(``bash tools/build_cuda_kernels.sh``): when mmscope's OpenMMLab dependencies
are missing, ``mmscope.ops`` is loaded from this repository on its own.

The exit status is 0 when every comparison is within its tolerance and 1
otherwise. A missing kernel package skips its rows; with
``--require-kernels`` it fails them. ``--device cpu`` on a machine where the
packages are installed checks the torch backend against their references
without a GPU.

Example:
    python tools/analysis/check_gpu.py --out gpu_check.md
"""
import argparse
import functools
import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import (Callable, Dict, Iterable, List, NamedTuple, Optional,
                    Sequence)

import torch

REPO_DIR = Path(__file__).resolve().parents[2]

INPUT_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')
# Scan inputs that take the dtype of u. A, D and delta_bias stay float32
# because the mamba-ssm kernel requires it.
SEQUENCE_INPUTS = ('u', 'delta', 'B', 'C', 'z')

# Optional terms of each case. Every term is on in one case and off in
# another.
SCAN_CASES = {
    'none': dict(),
    'D': dict(D=True),
    'z': dict(z=True),
    'delta_bias': dict(delta_bias=True),
    'softplus': dict(softplus=True),
    'all': dict(D=True, z=True, delta_bias=True, softplus=True),
}
HALF_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}

# The module and function of the pure-PyTorch reference that each kernel
# package ships.
UPSTREAM_REFERENCES = {
    'scan': ('mamba_ssm.ops.selective_scan_interface', 'selective_scan_ref'),
    'conv': ('causal_conv1d.causal_conv1d_interface', 'causal_conv1d_ref'),
}


class Row(NamedTuple):
    """One comparison of the report."""

    check: str
    case: str
    output_error: float
    grad_error: float
    worst_grad: str
    tolerance: float
    status: str
    note: str = ''


class Candidate(NamedTuple):
    """A function to compare with the torch backend, or why it cannot run."""

    function: Optional[Callable]
    reason: str = ''


class ScanCase(NamedTuple):
    """Sizes, optional terms and dtype of one scan comparison."""

    batch: int
    dim: int
    state: int
    length: int
    terms: Dict[str, bool]
    dtype: torch.dtype = torch.float32


Results = Dict[str, torch.Tensor]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Compare the cuda and torch backends of the selective '
        'scan and causal conv1d on a GPU, and the torch backend on the GPU '
        'with the CPU.')

    parser.add_argument('--device', default='cuda',
                        help="device to check (default: 'cuda'). 'cpu' "
                        'runs the script without a GPU: the kernel rows are '
                        'skipped and only the plumbing is exercised')
    parser.add_argument('--lengths', type=int, nargs='+',
                        default=[1, 2, 197, 1025, 4200],
                        help='sequence lengths of the comparisons '
                        '(default: 1 2 197 1025 4200)')
    parser.add_argument('--dim', type=int, default=64,
                        help='channels of the comparisons (default: 64)')
    parser.add_argument('--state', type=int, default=16,
                        help='state size of the comparisons (default: 16)')
    parser.add_argument('--batch', type=int, default=2,
                        help='batch size of the comparisons (default: 2)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed of the inputs (default: 0)')

    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest relative error of the cuda backend '
                        'against the torch backend in float32 (default: '
                        '1e-3)')
    parser.add_argument('--device-tolerance', type=float, default=1e-4,
                        help='largest relative error of the torch backend '
                        'on the device against the CPU (default: 1e-4)')
    parser.add_argument('--reference-tolerance', type=float, default=1e-4,
                        help='largest relative error of the torch backend '
                        "against the kernel packages' reference functions "
                        '(default: 1e-4)')
    parser.add_argument('--half-tolerance', type=float, default=2e-2,
                        help='largest relative error of the cuda backend '
                        'against the torch backend with bfloat16 or float16 '
                        'inputs (default: 2e-2)')

    parser.add_argument('--no-timing', action='store_true',
                        help='skip the timing of the backends')
    parser.add_argument('--time-size', type=int, nargs=4,
                        default=[1, 768, 16, 1024],
                        metavar=('BATCH', 'DIM', 'STATE', 'LENGTH'),
                        help='scan sizes of the timing (default: 1 768 16 '
                        '1024, one Vision Mamba-base layer at 224x224)')
    parser.add_argument('--runs', type=int, default=20,
                        help='timed runs per backend; the median is reported '
                        '(default: 20)')
    parser.add_argument('--require-kernels', action='store_true',
                        help='fail, rather than skip, the rows that cannot '
                        'run: the cuda backend rows when the device is not a '
                        'CUDA device, and the cuda backend and reference rows '
                        'of a kernel package that is not installed')
    parser.add_argument('--out',
                        help='also write the report to this markdown file')

    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser,
               args: argparse.Namespace) -> None:
    """Reject sizes, tolerances and devices the checks cannot use."""
    sizes = [('--lengths', length) for length in args.lengths]
    sizes += [('--dim', args.dim), ('--state', args.state),
              ('--batch', args.batch), ('--runs', args.runs)]
    sizes += [('--time-size', size) for size in args.time_size]
    for option, value in sizes:
        if value < 1:
            parser.error(f'{option} must be at least 1, got {value}')

    for option in ('tolerance', 'device_tolerance', 'reference_tolerance',
                   'half_tolerance'):
        value = getattr(args, option)
        if not value > 0:
            parser.error(f"--{option.replace('_', '-')} must be positive, "
                         f'got {value}')

    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ('cuda', 'cpu'):
        parser.error(f"--device {args.device!r} is not supported: use "
                     "'cuda', 'cuda:N' or 'cpu'")
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {device}: this PyTorch '
                     f'({torch.__version__}) sees no CUDA device. Run on a '
                     "machine with a GPU, or pass --device cpu for a dry run")
    args.device = device

    if args.out is not None:
        args.out = prepare_output(parser, args.out)


def prepare_output(parser: argparse.ArgumentParser, out: str) -> Path:
    """Check that the report file can be written, so a bad path fails now.

    An existing report is kept until the new one replaces it at the end.
    """
    path = Path(out)
    if out.endswith(('/', '\\')) or path.is_dir():
        parser.error(f'--out {out} is a folder: give a file name such as '
                     'gpu_check.md')
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open('a', encoding='utf-8'):
            pass
    except OSError as error:
        parser.error(f'--out {out} cannot be written: {error}')
    if not existed:
        path.unlink()
    return path


def load_ops() -> ModuleType:
    """Import ``mmscope.ops``, on its own when mmscope cannot be imported.

    ``mmscope.ops`` imports only torch and the optional kernels, but
    importing it through the package also imports MMEngine, mmcv and the
    OpenMMLab codebases. On a machine without them the subpackage is loaded
    from this repository under the name ``mmscope_ops``.

    Returns:
        The ``mmscope.ops`` module.
    """
    try:
        from mmscope import ops
        return ops
    except ImportError:
        ops_dir = REPO_DIR / 'mmscope' / 'ops'
        spec = importlib.util.spec_from_file_location(
            'mmscope_ops', ops_dir / '__init__.py',
            submodule_search_locations=[str(ops_dir)])
        module = importlib.util.module_from_spec(spec)
        sys.modules['mmscope_ops'] = module
        spec.loader.exec_module(module)
        return module


def kernel_status(ops: ModuleType, device: torch.device) -> Dict[str, str]:
    """Say for each kernel package why its backend cannot run, if it cannot.

    Returns:
        A dict from ``'scan'`` and ``'conv'`` to an empty string when the
        ``'cuda'`` backend can run on ``device``, and otherwise the reason.
    """
    if device.type != 'cuda':
        reason = f'the cuda backend needs a CUDA device, not {device}'
        return {'scan': reason, 'conv': reason}

    scan_module = sys.modules[ops.selective_scan.__module__]
    conv_module = sys.modules[ops.causal_conv1d.__module__]
    missing = 'not installed: run bash tools/build_cuda_kernels.sh'
    return {
        'scan': '' if scan_module.selective_scan_fn is not None else
        f'mamba_ssm {missing}',
        'conv': '' if conv_module.causal_conv1d_fn is not None else
        f'causal_conv1d {missing}',
    }


def upstream_references() -> Dict[str, Candidate]:
    """Import the reference function of each kernel package.

    Returns:
        A dict from ``'scan'`` and ``'conv'`` to the reference function, or
        to the reason it cannot be imported.
    """
    references = {}
    for kind, (module_name, function_name) in UPSTREAM_REFERENCES.items():
        package = module_name.split('.')[0]
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            references[kind] = Candidate(
                None, f'{package} not importable ({error}): run bash '
                'tools/build_cuda_kernels.sh')
            continue
        function = getattr(module, function_name, None)
        if function is None:
            references[kind] = Candidate(
                None, f'{module_name} has no {function_name}: install the '
                'version that tools/build_cuda_kernels.sh pins')
        else:
            references[kind] = Candidate(function)
    return references


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Return ||actual - expected|| / ||expected|| in float64."""
    difference = (actual.double() - expected.double()).norm()
    return (difference / expected.double().norm().clamp_min(1e-30)).item()


def make_scan_inputs(case: ScanCase,
                     seed: int) -> Dict[str, Optional[torch.Tensor]]:
    """Build float32 CPU scan inputs whose decays stay below 1.

    ``A`` is negative and the step sizes are positive, so the states stay
    bounded at every length.
    """
    generator = torch.Generator().manual_seed(seed)
    batch, dim, state, length = case.batch, case.dim, case.state, case.length

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    def uniform(*shape: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    if case.terms.get('softplus'):
        delta = normal(batch, dim, length) - 1.0
    else:
        delta = uniform(batch, dim, length, low=0.01, high=0.5)
    inputs = {
        'u': normal(batch, dim, length),
        'delta': delta,
        'A': -torch.exp(uniform(dim, state, low=-1.0, high=1.5)),
        'B': normal(batch, state, length),
        'C': normal(batch, state, length),
        'D': normal(dim),
        'z': normal(batch, dim, length),
        'delta_bias': uniform(dim, low=0.0, high=0.1),
    }
    for name in ('D', 'z', 'delta_bias'):
        if not case.terms.get(name):
            inputs[name] = None
    return inputs


def run_scan(scan: Callable, case: ScanCase, device: torch.device,
             seed: int) -> Results:
    """Run one scan forward and backward and return the results on the CPU.

    Args:
        scan: A function with the signature of ``selective_scan``: a
            backend of ``mmscope.ops.selective_scan`` or a kernel package's
            reference.
        case: Sizes, optional terms and dtype of the inputs.
        device: Device to run on.
        seed: Seed of the inputs and of the output gradient.

    Returns:
        A dict with the output under ``'output'``, the last state under
        ``'last_state'`` and the gradient of each given input under its
        name, all in float32.
    """
    inputs = make_scan_inputs(case, seed)
    leaves = {}
    for name, tensor in inputs.items():
        if tensor is None:
            continue
        dtype = case.dtype if name in SEQUENCE_INPUTS else torch.float32
        leaves[name] = tensor.to(device=device,
                                 dtype=dtype).requires_grad_(True)

    out, last_state = scan(**leaves,
                           delta_softplus=bool(case.terms.get('softplus')),
                           return_last_state=True)
    generator = torch.Generator().manual_seed(seed + 1)
    grad_out = torch.randn(out.shape, generator=generator)
    grads = torch.autograd.grad(out, list(leaves.values()),
                                grad_out.to(device=device, dtype=out.dtype))

    results = {'output': out, 'last_state': last_state}
    results.update(zip(leaves, grads))
    return {name: value.detach().float().cpu()
            for name, value in results.items()}


def make_conv_inputs(batch: int, dim: int, length: int, bias: bool,
                     seed: int) -> Dict[str, Optional[torch.Tensor]]:
    """Build float32 CPU inputs of a width-4 depthwise causal conv1d."""
    generator = torch.Generator().manual_seed(seed)
    return {
        'x': torch.randn(batch, dim, length, generator=generator),
        'weight': torch.randn(dim, 4, generator=generator) * 0.5,
        'bias': torch.randn(dim, generator=generator) if bias else None,
    }


def run_conv(conv: Callable, inputs: Dict[str, Optional[torch.Tensor]],
             activation: Optional[str], device: torch.device,
             seed: int) -> Results:
    """Run one causal conv1d forward and backward, return CPU results.

    ``conv`` is a backend of ``mmscope.ops.causal_conv1d`` or the reference
    of the causal-conv1d package; both take ``x``, ``weight``, ``bias`` and
    ``activation``.
    """
    leaves = {
        name: tensor.to(device).requires_grad_(True)
        for name, tensor in inputs.items() if tensor is not None
    }
    out = conv(**leaves, activation=activation)
    generator = torch.Generator().manual_seed(seed + 1)
    grad_out = torch.randn(out.shape, generator=generator).to(device)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out)

    results = {'output': out}
    results.update(zip(leaves, grads))
    return {name: value.detach().float().cpu()
            for name, value in results.items()}


def nan_key(error: float) -> float:
    """Sort key that ranks a NaN error above every number."""
    return math.inf if math.isnan(error) else error


def nan_max(errors: Iterable[float]) -> float:
    """Return the largest error, or NaN when any error is NaN."""
    return max(errors, key=nan_key)


def compare(check: str, case: str, actual: Results, expected: Results,
            tolerance: float) -> Row:
    """Compare two result dicts and grade the largest relative error.

    The output error covers ``'output'`` and ``'last_state'``. The gradient
    error is the largest over the gradients, and ``worst_grad`` names it.
    """
    output_error = nan_max(
        relative_error(actual[name], expected[name])
        for name in ('output', 'last_state') if name in expected)
    grad_errors = {
        name: relative_error(actual[name], expected[name])
        for name in expected if name not in ('output', 'last_state')
    }
    worst_grad = max(grad_errors, key=lambda name: nan_key(grad_errors[name]))
    worst = nan_max([output_error, grad_errors[worst_grad]])
    # A NaN error fails: it compares False with the tolerance.
    status = 'PASS' if worst <= tolerance else 'FAIL'
    return Row(check, case, output_error, grad_errors[worst_grad], worst_grad,
               tolerance, status)


def skipped(check: str, case: str, tolerance: float, reason: str,
            required: bool) -> Row:
    """Return the row of a comparison whose kernel cannot run."""
    return Row(check, case, math.nan, math.nan, '-', tolerance,
               'FAIL' if required else 'SKIP', reason)


def backend_rows(check: str, label: str, run: Callable[[Callable], Results],
                 candidate: Candidate, expected: Callable[[], Results],
                 tolerance: float, required: bool) -> List[Row]:
    """Compare one function with the torch backend's results, or skip it.

    Args:
        check: Name of the comparison, such as ``'scan: cuda vs torch'``.
        label: The case of the row.
        run: Runs a function on the row's inputs and returns its results.
        candidate: The function to compare, or why it cannot run.
        expected: Returns the torch backend's results on the same inputs.
            It is called only when the candidate runs.
        tolerance: Largest relative error that passes.
        required: Fail, rather than skip, when the function cannot run.

    Returns:
        A list with the one row.
    """
    if candidate.function is None:
        return [skipped(check, label, tolerance, candidate.reason, required)]
    return [compare(check, label, run(candidate.function), expected(),
                    tolerance)]


def cached_run(run: Callable[[Callable], Results],
               function: Callable) -> Callable[[], Results]:
    """Return a function that runs ``function`` once and keeps the results."""
    return functools.cache(lambda: run(function))


def scan_backend(ops: ModuleType, backend: str) -> Callable:
    """Return ``ops.selective_scan`` bound to one backend."""
    return functools.partial(ops.selective_scan, backend=backend)


def conv_backend(ops: ModuleType, backend: str) -> Callable:
    """Return ``ops.causal_conv1d`` bound to one backend."""
    return functools.partial(ops.causal_conv1d, backend=backend)


def cuda_candidate(function: Callable, reason: str) -> Candidate:
    """Return the cuda backend as a candidate, or why it cannot run."""
    return Candidate(None, reason) if reason else Candidate(function)


def scan_rows(ops: ModuleType, args: argparse.Namespace,
              kernels: Dict[str, str],
              references: Dict[str, Candidate]) -> List[Row]:
    """Compare the scan backends and the reference at every length and case.
    """
    rows = []
    sizes = (args.batch, args.dim, args.state)
    cuda = cuda_candidate(scan_backend(ops, 'cuda'), kernels['scan'])
    for length in args.lengths:
        for name, terms in SCAN_CASES.items():
            case = ScanCase(*sizes, length, terms)
            label = f'L={length}, {name}, float32'

            def run(scan: Callable, case: ScanCase = case) -> Results:
                return run_scan(scan, case, args.device, args.seed)

            torch_result = cached_run(run, scan_backend(ops, 'torch'))
            rows += backend_rows('scan: cuda vs torch', label, run, cuda,
                                 torch_result, args.tolerance,
                                 args.require_kernels)
            rows += backend_rows('scan: mamba-ssm reference vs torch', label,
                                 run, references['scan'], torch_result,
                                 args.reference_tolerance,
                                 args.require_kernels)
            if name == 'all':
                cpu_result = run_scan(scan_backend(ops, 'torch'), case,
                                      torch.device('cpu'), args.seed)
                rows.append(compare(f'scan: torch, {args.device} vs cpu',
                                    label, torch_result(), cpu_result,
                                    args.device_tolerance))
    rows += half_scan_rows(ops, args, cuda)
    return rows


def half_scan_rows(ops: ModuleType, args: argparse.Namespace,
                   cuda: Candidate) -> List[Row]:
    """Compare the scan backends with bfloat16 and float16 inputs."""
    rows = []
    for dtype_name, dtype in HALF_DTYPES.items():
        for length in args.lengths:
            case = ScanCase(args.batch, args.dim, args.state, length,
                            SCAN_CASES['all'], dtype)
            label = f'L={length}, all, {dtype_name}'

            def run(scan: Callable, case: ScanCase = case) -> Results:
                return run_scan(scan, case, args.device, args.seed)

            rows += backend_rows('scan: cuda vs torch', label, run, cuda,
                                 cached_run(run, scan_backend(ops, 'torch')),
                                 args.half_tolerance, args.require_kernels)
    return rows


def conv_rows(ops: ModuleType, args: argparse.Namespace,
              kernels: Dict[str, str],
              references: Dict[str, Candidate]) -> List[Row]:
    """Compare the causal conv1d backends and the reference at every length.
    """
    rows = []
    cuda = cuda_candidate(conv_backend(ops, 'cuda'), kernels['conv'])
    for length in args.lengths:
        for bias in (False, True):
            for activation in (None, 'silu'):
                inputs = make_conv_inputs(args.batch, args.dim, length, bias,
                                          args.seed)
                label = (f'L={length}, bias {"on" if bias else "off"}, '
                         f'activation {activation}')

                def run(conv: Callable, inputs: Dict = inputs,
                        activation: Optional[str] = activation) -> Results:
                    return run_conv(conv, inputs, activation, args.device,
                                    args.seed)

                torch_result = cached_run(run, conv_backend(ops, 'torch'))
                rows += backend_rows('conv1d: cuda vs torch', label, run,
                                     cuda, torch_result, args.tolerance,
                                     args.require_kernels)
                rows += backend_rows('conv1d: causal-conv1d reference vs '
                                     'torch', label, run, references['conv'],
                                     torch_result, args.reference_tolerance,
                                     args.require_kernels)
                if bias and activation == 'silu':
                    cpu_result = run_conv(conv_backend(ops, 'torch'), inputs,
                                          activation, torch.device('cpu'),
                                          args.seed)
                    rows.append(compare(f'conv1d: torch, {args.device} vs '
                                        'cpu', label, torch_result(),
                                        cpu_result, args.device_tolerance))
    return rows


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device``."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_seconds(run: Callable[[], None], device: torch.device,
                   runs: int) -> float:
    """Return the median wall time of ``run`` after two warm-up calls."""
    for _ in range(2):
        run()
    times = []
    for _ in range(runs):
        synchronize(device)
        begin = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def peak_memory_mib(run: Callable[[], None], device: torch.device) -> float:
    """Return the peak memory one call of ``run`` allocates on a GPU.

    Returns:
        The peak in MiB, or NaN on the CPU, where it is not measured.
    """
    if device.type != 'cuda':
        return math.nan
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def timing_lines(ops: ModuleType, args: argparse.Namespace,
                 kernels: Dict[str, str]) -> List[str]:
    """Time the forward and the forward plus backward of each backend."""
    batch, dim, state, length = args.time_size
    case = ScanCase(batch, dim, state, length, SCAN_CASES['all'])
    inputs = {
        name: None if tensor is None else tensor.to(args.device)
        for name, tensor in make_scan_inputs(case, args.seed).items()
    }
    leaves = {
        name: tensor.detach().clone().requires_grad_(True)
        for name, tensor in inputs.items() if tensor is not None
    }
    grad_out = torch.randn(batch, dim, length, device=args.device)
    backends = ['torch'] + ([] if kernels['scan'] else ['cuda'])

    def forward(backend: str) -> Callable[[], None]:

        def run() -> None:
            with torch.no_grad():
                ops.selective_scan(**inputs, delta_softplus=True,
                                   backend=backend)

        return run

    def training(backend: str) -> Callable[[], None]:

        def run() -> None:
            out = ops.selective_scan(**leaves, delta_softplus=True,
                                     backend=backend)
            torch.autograd.grad(out, list(leaves.values()), grad_out)

        return run

    lines = [
        f'Scan timing on {args.device}: batch {batch}, dim {dim}, state '
        f'{state}, length {length}, float32, every optional term on; median '
        f'of {args.runs} runs after 2 warm-up runs.', '',
        '| backend | forward (ms) | forward + backward (ms) | peak memory, '
        'forward + backward (MiB) |', '|---|---|---|---|'
    ]
    medians = {}
    for backend in backends:
        medians[backend] = (median_seconds(forward(backend), args.device,
                                           args.runs),
                            median_seconds(training(backend), args.device,
                                           args.runs))
        peak = peak_memory_mib(training(backend), args.device)
        peak_text = '-' if math.isnan(peak) else f'{peak:.1f}'
        lines.append(f'| {backend} | {medians[backend][0] * 1e3:.3f} | '
                     f'{medians[backend][1] * 1e3:.3f} | {peak_text} |')

    if 'cuda' in medians:
        lines += [
            '', f"torch / cuda: {medians['torch'][0] / medians['cuda'][0]:.1f}"
            f"x (forward), {medians['torch'][1] / medians['cuda'][1]:.1f}x "
            '(forward + backward)'
        ]
    else:
        lines += ['', f"cuda backend not timed: {kernels['scan']}"]
    return lines


def environment_lines(device: torch.device) -> List[str]:
    """Describe PyTorch, the device and the kernel packages."""
    lines = [f'torch {torch.__version__}, CUDA {torch.version.cuda}']
    if device.type == 'cuda':
        lines.append(f'device: {torch.cuda.get_device_name(device)}')
    for package in ('mamba_ssm', 'causal_conv1d'):
        try:
            module = importlib.import_module(package)
        except ImportError as error:
            lines.append(f'{package}: not importable ({error})')
        else:
            lines.append(f"{package} {getattr(module, '__version__', '?')}")
    return lines


def format_rows(rows: Sequence[Row]) -> List[str]:
    """Format the comparison rows as a markdown table."""
    lines = [
        '| check | case | output error | gradient error | worst gradient '
        '| tolerance | status | note |', '|---|---|---|---|---|---|---|---|'
    ]
    for row in rows:
        lines.append(f'| {row.check} | {row.case} | {row.output_error:.1e} '
                     f'| {row.grad_error:.1e} | {row.worst_grad} '
                     f'| {row.tolerance:.0e} | {row.status} | {row.note} |')
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Run the checks, print the report and return the exit status."""
    args = parse_args(argv)
    ops = load_ops()
    kernels = kernel_status(ops, args.device)

    references = upstream_references()
    rows = (scan_rows(ops, args, kernels, references) +
            conv_rows(ops, args, kernels, references))
    counts = {status: sum(row.status == status for row in rows)
              for status in ('PASS', 'FAIL', 'SKIP')}
    lines = environment_lines(args.device) + [''] + format_rows(rows) + [
        '', f"{len(rows)} comparisons: {counts['PASS']} passed, "
        f"{counts['FAIL']} failed, {counts['SKIP']} skipped", ''
    ]
    if not args.no_timing:
        lines += timing_lines(ops, args, kernels)

    report = '\n'.join(lines) + '\n'
    sys.stdout.write(report)
    if args.out is not None:
        args.out.write_text(report, encoding='utf-8')
    return 1 if counts['FAIL'] else 0


if __name__ == '__main__':
    sys.exit(main())
