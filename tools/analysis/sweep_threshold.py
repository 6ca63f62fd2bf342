"""Sweep the MambaScope gate threshold and plot quality against GFLOPs.

One pass over the test set keeps both predictions of every image; the
metrics of each threshold are then computed without running the model again.

Example:
    python tools/analysis/sweep_threshold.py \
        configs/ade20k/upernet_mambascope_s.py work_dirs/x/iter_160000.pth \
        --thresholds 0 0.5 0.8 0.9 0.95 1 --out-dir work_dirs/sweep
"""
import argparse
import json
import logging
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmscope.analysis.sweep_report import (format_sweep_table, plot_pareto,
                                           write_csv, write_image_csv)
from mmscope.analysis.threshold_sweep import (check_sweep_config,
                                              collect_paths, sweep_thresholds,
                                              thresholds_for_shares)
from mmscope.apis import task_of
from mmscope.evaluation import ScopeMetric
from mmscope.utils import (ConfigOptionsAction, build_runner,
                           check_checkpoint_before_runner,
                           check_checkpoint_input, check_config_file,
                           check_data_arguments, check_data_paths,
                           check_output_dir)
from mmscope.utils.model_settings import type_name

DEFAULT_THRESHOLDS = [round(value, 2) for value in np.arange(0, 1.0001, 0.05)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a MambaScope model at many gate thresholds '
        'from one pass over its test set.')
    parser.add_argument('config', help='mmseg or mmdet MambaScope config')
    parser.add_argument('checkpoint', help='checkpoint file of the config')

    parser.add_argument(
        '--thresholds', type=float, nargs='+', default=DEFAULT_THRESHOLDS,
        help='gate thresholds eta to evaluate (default: 0 to 1 in steps of '
        '0.05); 0 refines no image, 1 refines every image')
    parser.add_argument(
        '--share-steps', type=int, metavar='N',
        help='also evaluate the thresholds at which 0, 1/N, ..., 1 of the '
        'test images are refined, taken from their confidences')
    parser.add_argument(
        '--out-dir', help='folder for sweep.csv, sweep_images.csv, sweep.md, '
        'sweep.png, baseline.json and the logs (default: '
        'work_dirs/sweep_CONFIG_NAME)')

    parser.add_argument(
        '--baseline-config', help='Vim config evaluated once as the '
        'reference point of the plot')
    parser.add_argument(
        '--baseline-checkpoint', help='checkpoint of --baseline-config')

    parser.add_argument(
        '--cfg-options', nargs='+', action=ConfigOptionsAction,
        default={},
        help='override entries of CONFIG, as in tools/test.py')
    parser.add_argument(
        '--baseline-cfg-options', nargs='+', action=ConfigOptionsAction,
        default={},
        help='override entries of --baseline-config')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args()


def check_args(args: argparse.Namespace) -> None:
    """Exit with a message naming the first invalid option."""
    check_config_file(args.config, 'CONFIG')
    check_checkpoint_input(args.checkpoint, 'CHECKPOINT')
    check_config_file(args.baseline_config, '--baseline-config')
    check_checkpoint_input(args.baseline_checkpoint,
                           '--baseline-checkpoint')
    if (args.baseline_config is None) != (args.baseline_checkpoint is None):
        raise SystemExit('--baseline-config and --baseline-checkpoint go '
                         'together; give both or neither.')
    negative = [value for value in args.thresholds if value < 0]
    if negative:
        raise SystemExit(f'--thresholds {negative} are negative; give '
                         'thresholds of 0 (no image refined) or more, where '
                         '1 and above refine every image.')
    if args.share_steps is not None and args.share_steps < 1:
        raise SystemExit(f'--share-steps {args.share_steps} is invalid; give '
                         'a number of steps of at least 1.')
    if args.out_dir is not None:
        check_output_dir(args.out_dir, '--out-dir')


def runner_config(config: str, checkpoint: str, work_dir: str,
                  cfg_options: dict) -> Config:
    """Load a config for a single-process test run of ``checkpoint``."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(cfg_options))
    cfg.launcher = 'none'
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    return cfg


def models_registry(task: str):
    """Return the model registry of mmseg or mmdet."""
    if task == 'seg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return MODELS


def load_configs(args: argparse.Namespace, out_dir: str):
    """Load both configs and check them before any model is built."""
    cfg = runner_config(args.config, args.checkpoint, out_dir,
                        args.cfg_options)
    try:
        task = task_of(cfg)
        check_sweep_config(cfg.model, models_registry(task))
    except (TypeError, ValueError) as error:
        raise SystemExit(f'{args.config}: {error}') from error

    baseline_cfg = None
    if args.baseline_config is not None:
        baseline_cfg = runner_config(args.baseline_config,
                                     args.baseline_checkpoint,
                                     osp.join(out_dir, 'baseline'),
                                     args.baseline_cfg_options)
        if baseline_cfg.get('default_scope') != cfg.get('default_scope'):
            raise SystemExit('CONFIG and --baseline-config must both be '
                             'mmseg configs or both mmdet configs.')
        kind = type_name(baseline_cfg.model.get('backbone') or {})
        if kind != 'VisionMamba':
            raise SystemExit(
                '--baseline-config must have a VisionMamba backbone, whose '
                f'GFLOPs the sweep counts; {args.baseline_config} has '
                f'{kind or "none"}.')
    return cfg, baseline_cfg


def sweep(cfg: Config, args: argparse.Namespace,
          out_dir: str) -> Tuple[list, List[Tuple[int, int]]]:
    """Run the model once over the test set and evaluate every threshold.

    Also writes ``sweep_images.csv`` with the confidence of every image.

    Returns:
        The rows of the thresholds, and the input size (H, W) of each
        image.
    """
    runner = build_runner(cfg)
    runner.load_checkpoint(args.checkpoint, map_location='cpu')
    model = runner.model
    model.eval()

    dataloader = Runner.build_dataloader(cfg.test_dataloader,
                                         seed=runner.seed)
    evaluator = runner.build_evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = dataloader.dataset.metainfo
    metrics = [
        metric for metric in evaluator.metrics
        if not isinstance(metric, ScopeMetric)
    ]
    images = collect_paths(model, dataloader, metrics,
                           show_progress=not args.no_progress)
    if not images:
        raise SystemExit('The test dataloader gave no images to sweep over; '
                         'check test_dataloader.dataset.')
    write_image_csv(images, osp.join(out_dir, 'sweep_images.csv'))
    thresholds = set(args.thresholds)
    if args.share_steps is not None:
        thresholds.update(thresholds_for_shares(images, args.share_steps))
    shapes = [tuple(image.coarse_record['input_shape']) for image in images]
    return sweep_thresholds(images, metrics, sorted(thresholds)), shapes


def evaluate_baseline(baseline_cfg: Config, args: argparse.Namespace,
                      out_dir: str,
                      shapes: List[Tuple[int, int]]) -> Tuple[dict, float]:
    """Test the Vim baseline with the standard test loop.

    Args:
        baseline_cfg: The baseline's config.
        args: The command-line arguments.
        out_dir: The sweep's output folder, named in messages.
        shapes: Input size (H, W) of each test image of the sweep. The
            baseline's backbone GFLOPs are counted at these sizes, which
            assumes that both configs resize the test images alike.

    Returns:
        The baseline's metrics and its mean backbone GFLOPs per image.
    """
    runner = build_runner(baseline_cfg)
    try:
        metrics = runner.test()
    except FileNotFoundError as error:
        raise SystemExit(
            f'Testing --baseline-config {args.baseline_config} failed: '
            f'{error}. The sweep results are already in {out_dir}. Pass the '
            'data overrides of the baseline, such as data_root, through '
            '--baseline-cfg-options.') from error
    backbone = getattr(runner.model, 'module', runner.model).backbone
    gflops = sum(backbone.count_macs(shape) for shape in shapes) / len(
        shapes) / 1e9
    return metrics, gflops


def write_report(rows: list, out_dir: str, name: str,
                 baseline: Optional[dict],
                 baseline_gflops: Optional[float]) -> List[str]:
    """Write the CSV, markdown and PNG files; return the names written."""
    table = format_sweep_table(rows)
    if baseline is not None:
        values = ', '.join(f'{key} {value:g}' for key, value in
                           baseline.items() if isinstance(value, float))
        table += (f'\nVim baseline at {baseline_gflops:.4g} backbone GFLOPs '
                  f'per image: {values}\n')
        with open(osp.join(out_dir, 'baseline.json'), 'w') as file:
            json.dump(baseline, file, indent=2)
    elif osp.isfile(osp.join(out_dir, 'baseline.json')):
        # Left by an earlier run; it does not belong to these results.
        os.remove(osp.join(out_dir, 'baseline.json'))
    write_csv(rows, osp.join(out_dir, 'sweep.csv'))
    with open(osp.join(out_dir, 'sweep.md'), 'w') as file:
        file.write(table)

    written = ['sweep.csv', 'sweep_images.csv', 'sweep.md']
    if baseline is not None:
        written.append('baseline.json')
    if plot_pareto(rows, osp.join(out_dir, 'sweep.png'), name, baseline,
                   baseline_gflops):
        written.append('sweep.png')
    else:
        print_log('No threshold produced a metric value, so sweep.png was '
                  'not drawn; check the metric warnings above.',
                  logger='current', level=logging.WARNING)
    print_log(f'Sweep of {name} over {len(rows)} thresholds:\n{table}'
              f'Wrote {", ".join(written)} to {out_dir}', logger='current')
    return written


def main() -> None:
    args = parse_args()
    check_args(args)
    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', f'sweep_{name}')
    check_output_dir(out_dir, '--out-dir')
    cfg, baseline_cfg = load_configs(args, out_dir)
    # Both models and data sets are checked before the sweep, which takes a
    # while.
    check_data_arguments(cfg, ('test', ))
    check_data_paths(cfg, ('test', ))
    check_checkpoint_before_runner(cfg, args.checkpoint, 'CHECKPOINT',
                                   'Pass the overrides of the model through '
                                   '--cfg-options.')
    if baseline_cfg is not None:
        check_data_arguments(baseline_cfg, ('test', ),
                             '--baseline-cfg-options')
        check_data_paths(baseline_cfg, ('test', ), '--baseline-cfg-options')
        check_checkpoint_before_runner(
            baseline_cfg, args.baseline_checkpoint, '--baseline-checkpoint',
            'Pass the overrides of the baseline through '
            '--baseline-cfg-options.')
    os.makedirs(out_dir, exist_ok=True)

    rows, shapes = sweep(cfg, args, out_dir)
    # Written first, so that a failing baseline run keeps the sweep.
    write_report(rows, out_dir, name, None, None)
    if baseline_cfg is not None:
        baseline, baseline_gflops = evaluate_baseline(baseline_cfg, args,
                                                      out_dir, shapes)
        write_report(rows, out_dir, name, baseline, baseline_gflops)


if __name__ == '__main__':
    main()
