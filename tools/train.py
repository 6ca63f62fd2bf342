"""Train an mmseg or mmdet model from a config with the MMEngine runner.

Example:
    python tools/train.py configs/ade20k/upernet_mambascope_s.py
"""
import argparse
import logging
import numbers
import os.path as osp
import zipfile
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

from mmscope.utils import (add_runner_arguments, build_runner,
                           check_checkpoint_before_runner,
                           check_checkpoint_input, check_data_arguments,
                           check_data_paths, check_settings_exit,
                           check_weights_before_runner, close_process_group,
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


def resume_checkpoint(resume: Optional[str], work_dir: str) -> Optional[str]:
    """Return the checkpoint that ``--resume`` continues from, or None.

    Args:
        resume: Value of ``--resume``: a path, ``'auto'`` for the latest
            checkpoint in the work folder, or None.
        work_dir: The run's work folder.

    Returns:
        The checkpoint path, checked to start like a PyTorch file when it
        comes from the work folder. None when there is nothing to resume.
    """
    if resume != 'auto':
        return resume
    # MMEngine's search logs a notice of its own when the record is absent.
    has_record = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    latest = find_latest_checkpoint(work_dir) if has_record else None
    if latest is None:
        print_log(f'--resume: {work_dir} contains no checkpoint to resume '
                  'from (no last_checkpoint file), so training starts from '
                  'the beginning, from load_from where the config sets it.',
                  logger='current', level=logging.WARNING)
    else:
        check_checkpoint_input(latest, '--resume')
    return latest


def warn_if_finished(checkpoint: str, cfg: Config) -> None:
    """Log a warning when a resumed run has nothing left to train.

    Args:
        checkpoint: Checkpoint written by the runner, with its progress in
            ``meta``.
        cfg: The training config.
    """
    # Memory-mapping reads only meta from the disk, but PyTorch maps only
    # the zip format that torch.save has written since PyTorch 1.6.
    meta = torch.load(checkpoint, map_location='cpu',
                      mmap=zipfile.is_zipfile(checkpoint),
                      weights_only=False).get('meta') or {}
    train_cfg = cfg.get('train_cfg') or {}
    for key, unit in (('max_iters', 'iter'), ('max_epochs', 'epoch')):
        done, total = meta.get(unit), train_cfg.get(key)
        if done is not None and total is not None and done >= total:
            print_log(f'--resume: {checkpoint} ends at {unit} {done}, and '
                      f'train_cfg.{key} is {total}, so nothing is left to '
                      f'train. Raise train_cfg.{key} to train longer.',
                      logger='current', level=logging.WARNING)


def main() -> None:
    args = parse_args()
    if args.resume != 'auto':
        check_checkpoint_input(args.resume, '--resume')
    cfg = load_runner_config(args.config, args)
    check_train_length(cfg)
    check_settings_exit(cfg, ('train', 'val'))
    stages = ('train', 'val') if cfg.get('val_cfg') else ('train', )
    check_data_arguments(cfg, stages)
    check_data_paths(cfg, stages)

    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device, but none is '
                             'available. Train without --amp on CPU.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    start_weights = cfg.get('load_from')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    resume_from = resume_checkpoint(args.resume, cfg.work_dir)
    if resume_from is not None:
        check_checkpoint_before_runner(cfg, resume_from, '--resume')
        warn_if_finished(resume_from, cfg)
    else:
        if args.resume == 'auto':
            # Nothing to resume: start afresh from the config's load_from,
            # without MMEngine's notice about a checkpoint None.
            cfg.resume = False
            cfg.load_from = start_weights
        check_weights_before_runner(cfg)
    build_runner(cfg).train()
    close_process_group()


if __name__ == '__main__':
    main()
