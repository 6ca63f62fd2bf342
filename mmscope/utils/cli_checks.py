"""Checks of the paths that command-line tools take, with clear messages."""
import argparse
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import DictAction
from torch import nn

from .checkpoint_file import check_file_exists, check_local_checkpoint
from .checkpoint_match import (CheckpointMismatchError,
                               check_checkpoint_matches)

CONFIG_SUFFIXES = ('.py', '.json', '.yml', '.yaml')


def check_input_file(path: Optional[str], option: str) -> None:
    """Exit with a message if ``path`` is given but is not a readable file.

    Args:
        path: Path to check; ``None`` passes.
        option: Name of the argument, used in the message.
    """
    if path is None:
        return
    try:
        check_file_exists(path, option)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error


def check_checkpoint_input(path: Optional[str], option: str) -> None:
    """Exit with a message unless ``path`` is a PyTorch checkpoint file.

    Args:
        path: Path to check, as :func:`check_local_checkpoint` does;
            ``None`` passes.
        option: Name of the argument, used in the message.
    """
    if path is None:
        return
    try:
        check_local_checkpoint(path, option)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error
    except ValueError as error:
        raise SystemExit(f'{option}: {error}') from error


def check_config_file(path: Optional[str], option: str) -> None:
    """Exit with a message if ``path`` is not a config file MMEngine reads."""
    check_input_file(path, option)
    if path is not None and not path.endswith(CONFIG_SUFFIXES):
        raise SystemExit(
            f'{option} {path} is not a config file; MMEngine reads configs '
            f'ending in {", ".join(CONFIG_SUFFIXES)}.')


def check_output_file(path: Optional[str], option: str) -> None:
    """Exit with a message if ``path`` cannot be created as a file."""
    if path is None:
        return
    folder = osp.dirname(osp.abspath(path))
    if osp.isdir(path):
        raise SystemExit(f'{option} {path} is a folder; give a file name.')
    if not osp.isdir(folder):
        raise SystemExit(f'{option} {path}: folder {folder} does not exist; '
                         'create it first.')


def check_no_file_above(path: str, option: str) -> None:
    """Exit with a message if a folder that ``path`` needs is a file.

    Args:
        path: A file or folder path that may not exist yet.
        option: Name of the argument, used in the message.
    """
    parent = osp.dirname(osp.abspath(path))
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise SystemExit(f'{option} {path} lies below the file {parent}; '
                         'give a path in a folder.')


def check_output_dir(path: str, option: str) -> None:
    """Exit with a message if ``path`` or a folder above it is a file."""
    if osp.exists(path) and not osp.isdir(path):
        raise SystemExit(f'{option} {path} is a file; give a folder path.')
    check_no_file_above(path, option)


def check_checkpoint_fits(model: nn.Module, path: str, option: str,
                          hint: str = '') -> None:
    """Exit with a message unless the checkpoint sets every weight of model.

    Args:
        model: The model the checkpoint is meant for.
        path: The checkpoint file.
        option: Name of the argument, used in the message.
        hint: Sentences added to the message of a checkpoint that loads
            but does not fit, with the fix that fits the tool.
    """
    try:
        check_checkpoint_matches(model, path)
    except CheckpointMismatchError as error:
        raise SystemExit(f'{option}: {error} {hint}'.rstrip()) from error
    except ValueError as error:
        raise SystemExit(f'{option}: {error}') from error


class ConfigOptionsAction(DictAction):
    """``DictAction`` that rejects entries it cannot parse with a usage error.

    MMEngine's ``DictAction`` fails with a traceback on an entry without
    ``=`` or without a key, and on a ``dict(...)`` value, which it cannot
    parse. It reads a ``{...}`` value as a list of strings.
    """

    def __call__(self, parser: argparse.ArgumentParser,
                 namespace: argparse.Namespace, values: Sequence[str],
                 option_string: Optional[str] = None) -> None:
        for entry in values:
            key, separator, value = entry.partition('=')
            if not separator or not key.strip():
                parser.error(
                    f'{option_string} takes KEY=VALUE entries, got {entry!r}. '
                    'For example: model.backbone.threshold=0.9')
            if value.strip().startswith(('dict(', '{')):
                self._reject_dict(parser, option_string, entry)
        try:
            super().__call__(parser, namespace, values, option_string)
        except RecursionError:
            self._reject_dict(parser, option_string, ' '.join(values))

    @staticmethod
    def _reject_dict(parser: argparse.ArgumentParser,
                     option_string: Optional[str], entry: str) -> None:
        """Exit with the usage error for a ``dict(...)`` or ``{...}`` value."""
        parser.error(
            f'{option_string} cannot parse a dict(...) or {{...}} value: '
            f'{entry}. Set the keys of a dict one by one, for example '
            'model.backbone.init_cfg.checkpoint=PATH, or set the whole dict '
            'in a config file that inherits this one through _base_.')
