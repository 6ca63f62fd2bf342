"""Command-line options and runner set-up shared by the train and test tools."""
import argparse
import logging
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint_match import build_config_model, check_backbone_loaded
from .cli_checks import (ConfigOptionsAction, check_checkpoint_fits,
                         check_checkpoint_input, check_config_file,
                         check_output_dir)
from .device_config import adapt_config_to_device, init_cpu_process_group
from .log_level import current_logger_level
from .model_settings import check_model_settings
from .runner_checkpoints import allow_runner_checkpoints


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument(
        '--work-dir',
        help='folder for logs, metrics and checkpoints (default: '
        'work_dirs/CONFIG_NAME)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ConfigOptionsAction,
        help='override config entries, e.g. model.backbone.threshold=0.9 '
        'or train_cfg.max_iters=100')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher for distributed runs')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


# Variables that each launcher's process starter sets, and how to start one.
LAUNCHER_ENV = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'start the tool with tools/dist_train.sh, tools/dist_test.sh '
                'or torchrun'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
              'start the tool with srun inside a Slurm job'),
    'mpi': (('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK',
             'MASTER_ADDR'),
            'start the tool with mpirun of Open MPI, and export '
            'MASTER_ADDR (MASTER_PORT defaults to 29500)'),
}


def check_launcher_env(launcher: str) -> None:
    """Exit with a message if the launcher's process starter is missing.

    Args:
        launcher: Value of ``--launcher``.
    """
    if launcher not in LAUNCHER_ENV:
        return
    names, fix = LAUNCHER_ENV[launcher]
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise SystemExit(
            f'--launcher {launcher} needs the variables {", ".join(missing)}, '
            f'which are not set: {fix}, or use --launcher none for one '
            'process.')


def load_runner_config(config_path: str, args: argparse.Namespace) -> Config:
    """Load a config and apply the options of :func:`add_runner_arguments`."""
    check_config_file(config_path, 'config')
    check_launcher_env(args.launcher)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(config_path)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        merge_options(cfg, args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    check_output_dir(cfg.work_dir, '--work-dir')
    return cfg


def check_settings_exit(cfg: Config, stages: Sequence[str]) -> None:
    """Exit with a message if the heads do not fit the backbone or data.

    Args:
        cfg: The config.
        stages: Stages whose dataloader gives the class count, as in
            :func:`mmscope.utils.check_model_settings`.
    """
    with invalid_settings_exit():
        check_model_settings(cfg, stages)


def merge_options(cfg: Config, options: dict) -> None:
    """Apply ``--cfg-options`` to ``cfg``, exiting with a message on a clash.

    MMEngine cannot set a key below a setting whose value is not a dict,
    such as ``model.backbone.init_cfg.type`` where the config sets
    ``init_cfg=None``, and the command line cannot give ``_delete_=True``.
    """
    try:
        cfg.merge_from_dict(options)
    except TypeError as error:
        raise SystemExit(
            '--cfg-options: cannot set keys below a setting whose value is '
            f'not a dict ({error}). Set the whole value, with _delete_=True, '
            'in a config file that inherits this one through _base_.'
        ) from error


@contextmanager
def invalid_settings_exit() -> Iterator[None]:
    """End the program with the message of a setting the model rejects.

    A ``ValueError`` or ``TypeError`` raised while the model or a hook is
    built (such as for ``model.backbone.refine_ratio=0``, a string where a
    number belongs, or a misspelt argument name) becomes a one-line exit,
    without the traceback through MMEngine's registries.
    """
    try:
        yield
    except (ValueError, TypeError) as error:
        raise SystemExit(f'Invalid setting: {error}') from error


def build_runner(cfg: Config) -> Runner:
    """Adapt ``cfg`` to this machine's devices and build its runner.

    Settings that the model or a hook rejects end the program as
    :func:`invalid_settings_exit` describes.
    """
    adapt_config_to_device(cfg, cfg.launcher)
    allow_runner_checkpoints()
    init_cpu_process_group(cfg, cfg.launcher)
    with invalid_settings_exit():
        if 'runner_type' in cfg:
            return RUNNERS.build(cfg)
        return Runner.from_cfg(cfg)


def check_checkpoint_before_runner(cfg: Config, path: str, option: str,
                                   hint: str = '') -> None:
    """Exit unless a checkpoint sets every weight of the config's model.

    The runner writes its config into the work folder when it is built. This
    check builds the model on its own instead, so a rejected checkpoint leaves
    the work folder as it was.

    Args:
        cfg: The config the runner will be built from. It is adapted to
            this machine's devices, and runner checkpoints are allowed, as
            :func:`build_runner` does.
        path: The checkpoint file.
        option: Name of the argument, used in the message.
        hint: Sentences added to the message of a checkpoint that loads but
            does not fit, as in :func:`check_checkpoint_fits`.
    """
    check_checkpoint_fits(_model_before_runner(cfg), path, option, hint)


def _model_before_runner(cfg: Config) -> torch.nn.Module:
    """Build the config's model for a check, set up as the runner would.

    The config is adapted to this machine's devices and runner checkpoints
    are allowed, as :func:`build_runner` does. A setting that the model
    rejects ends the program as :func:`invalid_settings_exit` describes.
    """
    adapt_config_to_device(cfg, cfg.get('launcher', 'none'))
    allow_runner_checkpoints()
    with invalid_settings_exit():
        return build_config_model(cfg)


def _preload_backbone_weights(model: torch.nn.Module) -> None:
    """Exit if the backbone's Pretrained ``init_cfg`` does not load.

    The runner loads it when training starts, so an error would come as a
    traceback after the work folder has been set up. The runner logs the
    loader's notices and warnings then, so this load logs errors only.
    """
    from mmscope.models import VisionMamba
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, VisionMamba):
        return
    try:
        with current_logger_level(logging.ERROR):
            backbone.init_weights()
    except (FileNotFoundError, KeyError, RuntimeError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) else error
        raise SystemExit(f'model.backbone.init_cfg: {message}') from error


def check_weights_before_runner(cfg: Config) -> None:
    """Exit unless the weights a training run starts from load and fit.

    The backbone's Pretrained ``init_cfg`` is loaded once on a model of its
    own. MMEngine loads ``load_from`` non-strictly and only warns about keys
    it cannot use, so a checkpoint that sets less than half of the
    backbone's weights is rejected.
    Both checks run before the runner is built, as in
    :func:`check_checkpoint_before_runner`.

    Args:
        cfg: The training config.
    """
    from mmscope.models.backbones.vision_mamba import pretrained_entry
    backbone = cfg.model.get('backbone') or {}
    with invalid_settings_exit():
        pretrained = pretrained_entry(backbone.get('init_cfg'))
    path = cfg.get('load_from')
    if pretrained is None and not path:
        return

    model = _model_before_runner(cfg)
    if pretrained is not None:
        _preload_backbone_weights(model)
    if not path:
        return
    path = str(path)
    if '://' not in path:
        check_checkpoint_input(path, 'load_from')
    try:
        check_backbone_loaded(model, path)
    except ValueError as error:
        raise SystemExit(f'load_from: {error}') from error


def close_process_group() -> None:
    """End the distributed process group after every process has finished.

    Each process waits for the others at a barrier, so none exits while
    another still communicates. The group's threads then stop before the
    interpreter shuts down. Does nothing in a single-process run.
    """
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
