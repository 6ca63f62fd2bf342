"""Benchmark parameters, GFLOPs and latency of a model against a baseline.

Example:
    python tools/analysis/benchmark.py configs/ade20k/upernet_mambascope_s.py \
        --baseline configs/ade20k/upernet_vim_s.py --shape 512 512 \
        --refine-shares 0 0.5 1 --batch-size 2 --runs 5 --out table.md
"""
import argparse
import os.path as osp
import platform
import sys
from datetime import date
from typing import List, Optional, Tuple

import torch

from mmscope.analysis import (check_refine_shares, format_table,
                              make_data_samples, noise_warnings,
                              proposal_warnings, run_benchmark)
from mmscope.analysis.benchmark import is_scope_model
from mmscope.apis import init_scope_model, load_config, task_of
from mmscope.utils import (ConfigOptionsAction, check_checkpoint_input,
                           check_config_file, check_output_file)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Print parameters, GFLOPs and latency as a markdown '
        'table, one row per model and refine share.')
    parser.add_argument('config', help='mmseg or mmdet config to benchmark')
    parser.add_argument(
        '--baseline', help='config of the reference model of the ratios, '
        'for example the Vim config of the same size')
    parser.add_argument(
        '--checkpoint', help='checkpoint of CONFIG (default: the weights '
        'its constructors initialise)')
    parser.add_argument(
        '--baseline-checkpoint', help='checkpoint of the baseline config')

    parser.add_argument(
        '--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
        help='input height and width in pixels')
    parser.add_argument(
        '--refine-shares', type=float, nargs='+', default=[0.0, 0.5, 1.0],
        help='shares of images refined per batch, forced with the budget '
        'mode of a MambaScope backbone (default: 0 0.5 1)')

    parser.add_argument(
        '--batch-size', type=int, default=2,
        help='images per forward pass (default: 2)')
    parser.add_argument(
        '--runs', type=int, default=5,
        help='timed forward passes per row (default: 5)')
    parser.add_argument(
        '--warmup', type=int, default=1,
        help='untimed forward passes per row before the timed ones '
        '(default: 1)')
    parser.add_argument(
        '--device', choices=['cpu', 'cuda'], default='cpu',
        help='device to run on (default: cpu)')

    parser.add_argument(
        '--profile', type=int, default=0, metavar='N',
        help='after timing, profile one forward pass per row with '
        'torch.profiler and print its N most expensive operators')
    parser.add_argument(
        '--out', help='also write the report, without the log lines, to '
        'this file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        default={},
        help='override entries of CONFIG, as in tools/test.py')
    parser.add_argument(
        '--baseline-cfg-options', nargs='+', action=ConfigOptionsAction,
        default={},
        help='override entries of the baseline config')
    return parser.parse_args()


def check_args(args: argparse.Namespace) -> None:
    """Exit with a message naming the first invalid option."""
    height, width = args.shape
    if height < 32 or width < 32:
        raise SystemExit(f'--shape {height} {width} is too small; give a '
                         'height and width of at least 32 pixels.')
    if args.batch_size < 1 or args.runs < 1:
        raise SystemExit('--batch-size and --runs must be at least 1, got '
                         f'{args.batch_size} and {args.runs}.')
    if args.warmup < 0 or args.profile < 0:
        raise SystemExit('--warmup and --profile must be 0 or more, got '
                         f'{args.warmup} and {args.profile}.')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda was requested, but CUDA is not '
                         'available; use --device cpu.')
    check_config_file(args.config, 'CONFIG')
    check_config_file(args.baseline, '--baseline')
    check_checkpoint_input(args.checkpoint, '--checkpoint')
    check_checkpoint_input(args.baseline_checkpoint,
                           '--baseline-checkpoint')
    check_output_file(args.out, '--out')


def load_model(config: str, checkpoint: Optional[str], cfg_options: dict,
               device: str) -> Tuple[str, torch.nn.Module, str]:
    """Build one model in evaluation mode; return its name and task too."""
    cfg = load_config(config, cfg_options)
    try:
        task = task_of(cfg)
    except ValueError as error:
        raise SystemExit(f'{config}: {error}') from error
    try:
        model = init_scope_model(cfg, checkpoint, device)
    except ValueError as error:
        raise SystemExit(f'{config}: {error}') from error
    model.eval()
    name = osp.splitext(osp.basename(config))[0]
    return name, model, task


def describe_machine(device: str) -> str:
    """Return the processor or GPU name and the thread count."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    processor = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    processor = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{processor}, {torch.get_num_threads()} torch threads'


def report_header(args: argparse.Namespace) -> List[str]:
    """Describe the run in markdown list items put above the table."""
    weights = f'{osp.basename(args.config)}: ' + (
        args.checkpoint or 'random initialisation')
    if args.baseline is not None:
        weights += f', {osp.basename(args.baseline)}: ' + (
            args.baseline_checkpoint or 'random initialisation')
    return [
        f'- Command: `python {" ".join(sys.argv)}`',
        f'- Date: {date.today().isoformat()}; machine: '
        f'{describe_machine(args.device)}; torch {torch.__version__}',
        f'- Input: {args.batch_size} x 3 x {args.shape[0]} x {args.shape[1]}; '
        f'{args.warmup} warm-up and {args.runs} timed passes per row, '
        'interleaved',
        f'- Weights: {weights}',
        '',
    ]


def main() -> None:
    args = parse_args()
    check_args(args)

    models = []
    if args.baseline is not None:
        models.append(
            load_model(args.baseline, args.baseline_checkpoint,
                       args.baseline_cfg_options, args.device))
    models.append(
        load_model(args.config, args.checkpoint, args.cfg_options,
                   args.device))
    tasks = {task for _, _, task in models}
    if len(tasks) != 1:
        raise SystemExit('CONFIG and --baseline must both be mmseg configs '
                         'or both mmdet configs.')
    # The shares apply to MambaScope models only.
    if any(is_scope_model(model) for _, model, _ in models):
        try:
            check_refine_shares(args.refine_shares, args.batch_size)
        except ValueError as error:
            raise SystemExit(f'--refine-shares: {error}') from error

    torch.manual_seed(0)
    inputs = torch.randn(args.batch_size, 3, *args.shape, device=args.device)
    data_samples = make_data_samples(tasks.pop(), args.batch_size,
                                     tuple(args.shape))
    rows = run_benchmark([(name, model) for name, model, _ in models],
                         args.refine_shares, inputs, data_samples, args.runs,
                         args.warmup, args.device, args.profile)
    baseline = rows[0] if args.baseline is not None else None
    report = '\n'.join(report_header(args)) + '\n' + format_table(
        rows, baseline)
    for warning in noise_warnings(rows) + proposal_warnings(rows, baseline):
        report += f'\nWARNING: {warning}\n'
    for row in rows:
        if row.profile is not None:
            share = '' if row.refine_share is None else (
                f' at refine share {row.refine_share:g}')
            report += f'\nProfile of {row.name}{share}:\n\n{row.profile}\n'

    print(report, end='')
    if args.out:
        with open(args.out, 'w') as file:
            file.write(report)


if __name__ == '__main__':
    main()
