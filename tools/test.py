"""Evaluate a trained mmseg or mmdet model with the MMEngine runner.

Example:
    python tools/test.py configs/ade20k/upernet_mambascope_s.py ckpt.pth \
        --cfg-options model.backbone.threshold=0.9
"""
import argparse

from mmscope.utils import (add_runner_arguments, build_runner,
                           check_checkpoint_before_runner,
                           check_checkpoint_input,
                           check_data_paths, close_process_group,
                           load_runner_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test a segmentor or detector with mmscope backbones.')
    parser.add_argument('config', help='path of the config file')
    parser.add_argument('checkpoint', help='path of the checkpoint file')
    add_runner_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_runner_config(args.config, args)
    check_checkpoint_input(args.checkpoint, 'checkpoint')
    check_data_paths(cfg, ('test', ))
    check_checkpoint_before_runner(cfg, args.checkpoint, 'checkpoint')
    cfg.load_from = args.checkpoint
    build_runner(cfg).test()
    close_process_group()


if __name__ == '__main__':
    main()
