"""Evaluate a trained mmseg or mmdet model with the MMEngine runner.

Example:
    python tools/test.py configs/ade20k/upernet_mambascope_s.py ckpt.pth \
        --cfg-options model.backbone.threshold=0.9
"""
import argparse
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner

from mmscope.apis import task_of
from mmscope.utils import (add_runner_arguments, build_runner,
                           check_checkpoint_before_runner,
                           check_checkpoint_input, check_data_arguments,
                           check_data_paths, check_output_dir,
                           check_output_file, check_settings_exit,
                           close_process_group, load_runner_config)
from mmscope.utils.model_settings import type_name

DUMP_SUFFIXES = ('.pkl', '.pickle')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test a segmentor or detector with mmscope backbones.')
    parser.add_argument('config', help='path of the config file')
    parser.add_argument('checkpoint', help='path of the checkpoint file')
    parser.add_argument(
        '--out',
        help='segmentation: folder for the predicted label maps (PNG); '
        'detection: .pkl file for the predictions, for offline evaluation')
    parser.add_argument(
        '--show-dir',
        help='folder for drawn predictions (segmentation: in '
        'vis_data/vis_image below it). Segmentation draws every '
        'default_hooks.visualization.interval-th image (50 unless set)')
    add_runner_arguments(parser)
    return parser.parse_args()


def check_no_test_time_augmentation(cfg: Config) -> None:
    """Exit with a message if the test pipeline augments at test time.

    ``TestTimeAug`` gives several views of each image, which only a
    ``tta_model`` that merges their predictions can take; this tool does
    not build one.
    """
    loader = cfg.get('test_dataloader') or {}
    pipeline = (loader.get('dataset') or {}).get('pipeline') or []
    for index, transform in enumerate(pipeline):
        if isinstance(transform, dict) and \
                type_name(transform) == 'TestTimeAug':
            raise SystemExit(
                f'test_dataloader.dataset.pipeline.{index} is TestTimeAug, '
                'but tools/test.py does not support test-time augmentation. '
                'Use a test pipeline without it.')


def check_out_path(out: Optional[str], task: str) -> None:
    """Exit with a message if ``--out`` does not suit the config's task."""
    if out is None:
        return
    if task == 'seg':
        check_output_dir(out, '--out')
        if out.endswith(DUMP_SUFFIXES):
            raise SystemExit(f'--out {out}: segmentation writes one label map '
                             'per image into a folder; give a folder path.')
        return
    check_output_file(out, '--out')
    if not out.endswith(DUMP_SUFFIXES):
        raise SystemExit(f'--out {out}: detection predictions are written '
                         'as a pickle file; give a path ending in .pkl.')


def request_drawings(cfg: Config, show_dir: Optional[str], task: str) -> None:
    """Make the visualization hook draw the predictions into ``show_dir``."""
    if show_dir is None:
        return
    check_output_dir(show_dir, '--show-dir')
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if not hook:
        raise SystemExit(
            '--show-dir needs a visualization hook in default_hooks, such as '
            "visualization=dict(type='SegVisualizationHook') or "
            "dict(type='DetVisualizationHook').")
    hook['draw'] = True
    # mmdet's hook joins the folder to the run's log folder, so it gets an
    # absolute path; both tasks then write below show_dir.
    if task == 'seg':
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook['test_out_dir'] = osp.abspath(show_dir)


def request_label_maps(cfg: Config, out: Optional[str]) -> None:
    """Make each IoU metric of the test evaluator write its label maps."""
    if out is None:
        return
    evaluator = cfg.test_evaluator
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
        evaluator]
    iou_metrics = [metric for metric in metrics
                   if str(metric.get('type', '')).endswith('IoUMetric')]
    if not iou_metrics:
        raise SystemExit('--out needs an IoUMetric in test_evaluator, which '
                         'writes the label maps.')
    for metric in iou_metrics:
        metric['output_dir'] = out


def dump_detections(runner: Runner, out: Optional[str]) -> None:
    """Add a metric that writes the detector's predictions to ``out``."""
    if out is None:
        return
    from mmdet.evaluation import DumpDetResults
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))


def main() -> None:
    args = parse_args()
    cfg = load_runner_config(args.config, args)
    try:
        task = task_of(cfg)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    check_settings_exit(cfg, ('test', ))
    check_checkpoint_input(args.checkpoint, 'checkpoint')
    check_out_path(args.out, task)
    check_data_arguments(cfg, ('test', ))
    check_no_test_time_augmentation(cfg)
    check_data_paths(cfg, ('test', ))
    check_checkpoint_before_runner(cfg, args.checkpoint, 'checkpoint')
    cfg.load_from = args.checkpoint
    request_drawings(cfg, args.show_dir, task)
    if task == 'seg':
        request_label_maps(cfg, args.out)

    runner = build_runner(cfg)
    if task == 'det':
        dump_detections(runner, args.out)
    runner.test()
    close_process_group()


if __name__ == '__main__':
    main()
