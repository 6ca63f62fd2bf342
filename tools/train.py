"""Train an mmseg or mmdet model from a config with the MMEngine runner.

Example:
    python tools/train.py configs/ade20k/upernet_mambascope_s.py
"""
import argparse

import torch

from mmscope.utils import (add_runner_arguments, build_runner,
                           check_checkpoint_matches, check_input_file,
                           load_runner_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a segmentor or detector with mmscope backbones.')
    parser.add_argument('config', help='path of the config file')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='train with automatic mixed precision (needs CUDA)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work folder when no path is given')
    add_runner_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.resume != 'auto':
        check_input_file(args.resume, '--resume')
    cfg = load_runner_config(args.config, args)

    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device, but none is '
                             'available. Train without --amp on CPU.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    runner = build_runner(cfg)
    if args.resume not in (None, 'auto'):
        try:
            check_checkpoint_matches(runner.model, args.resume)
        except ValueError as error:
            raise SystemExit(f'--resume: {error}') from error
    runner.train()


if __name__ == '__main__':
    main()
