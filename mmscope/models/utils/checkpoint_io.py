"""Reading checkpoint files with PyTorch's weights-only unpickler."""
import argparse
import os.path as osp
import pickle

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from mmscope.utils.checkpoint_file import (FORCE_FULL_LOAD_ENV_VAR,
                                           check_checkpoint_file,
                                           damaged_file_errors,
                                           full_load_allowed)


def load_checkpoint_file(path: str) -> dict:
    """Load a checkpoint onto the CPU without running arbitrary pickled code.

    Local files are read with ``torch.load(weights_only=True)``. The official
    Vim checkpoints also pickle their training arguments as an
    ``argparse.Namespace``, which is allowed here as plain data. Checkpoints
    that MMEngine's runner writes also pickle its message hub, which only the
    full unpickler reads: it is used for them only while
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set, as ``tools/train.py`` and
    ``tools/test.py`` do. Other locations (URLs, ``open-mmlab://``) go through
    MMEngine's loaders.

    Args:
        path: Local path or URL of the checkpoint.

    Returns:
        The loaded content (usually a dict).

    Raises:
        FileNotFoundError: If a local path does not exist.
        ValueError: If the file is not a PyTorch checkpoint or is damaged.
        RuntimeError: If the file needs the full unpickler and it is not
            allowed.
    """
    if '://' in path:
        return CheckpointLoader.load_checkpoint(
            path, map_location='cpu', logger='current')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint file not found: {path}. Point init_cfg.checkpoint at '
            'an existing file, download the official Vim weights '
            '(docs/getting_started.md), or set model.backbone.init_cfg=None '
            'to train from scratch.')

    check_checkpoint_file(path)
    with damaged_file_errors(path):
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as error:
            if not full_load_allowed():
                raise RuntimeError(
                    f'Cannot load {path} as weights only: {error}. A '
                    'checkpoint written by tools/train.py loads under '
                    'tools/train.py and tools/test.py, or after '
                    f'{FORCE_FULL_LOAD_ENV_VAR}=1 (see '
                    'mmscope.utils.allow_runner_checkpoints); load only '
                    'files from a trusted source.') from error

        print_log(
            f'{path} holds objects beyond weights; reading it with the full '
            f'unpickler, as {FORCE_FULL_LOAD_ENV_VAR} allows.',
            logger='current')
        return torch.load(path, map_location='cpu', weights_only=False)
