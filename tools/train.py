"""Train an mmseg or mmdet model from a config with the MMEngine runner.

Example:
    python tools/train.py configs/ade20k/upernet_mambascope_s.py
"""
import argparse
import numbers

import torch
from mmengine.config import Config

from mmscope.utils import (add_runner_arguments, build_runner,
                           check_checkpoint_fits, check_checkpoint_input,
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


def check_train_length(cfg: Config) -> None:
    """Exit with a message unless the training length is a positive count."""
    train_cfg = cfg.get('train_cfg') or {}
    for key in ('max_iters', 'max_epochs'):
        value = train_cfg.get(key)
        if value is None:
            continue
        whole = isinstance(value, numbers.Integral) and not isinstance(
            value, bool)
        if not whole or value < 1:
            raise SystemExit(f'train_cfg.{key} must be a whole number of at '
                             f'least 1, got {value!r}.')


def main() -> None:
    args = parse_args()
    if args.resume != 'auto':
        check_checkpoint_input(args.resume, '--resume')
    cfg = load_runner_config(args.config, args)
    check_train_length(cfg)

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
        check_checkpoint_fits(runner.model, args.resume, '--resume')
    runner.train()


if __name__ == '__main__':
    main()
