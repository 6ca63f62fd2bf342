"""Reading checkpoint files with PyTorch's weights-only unpickler."""
import argparse
import os.path as osp
import pickle

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_checkpoint_file(path: str) -> dict:
    """Load a checkpoint onto the CPU without running arbitrary pickled code.

    Local files are read with ``torch.load(weights_only=True)``. The official
    Vim checkpoints also pickle their training arguments as an
    ``argparse.Namespace``, which is allowed here as plain data. Other
    locations (URLs, ``open-mmlab://``) go through MMEngine's loaders.

    Args:
        path: Local path or URL of the checkpoint.

    Returns:
        The loaded content (usually a dict).

    Raises:
        FileNotFoundError: If a local path does not exist.
        RuntimeError: If the file contains objects other than tensors and plain
            containers.
    """
    if '://' in path:
        return CheckpointLoader.load_checkpoint(
            path, map_location='cpu', logger='current')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint file not found: {path}. Download the official Vim '
            'weights (docs/getting_started.md) or set '
            'model.backbone.init_cfg=None to train from scratch.')

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f'Cannot load {path} as weights only: {error}. If the file comes '
            'from a trusted source, convert it with '
            'tools/convert_vim_checkpoint.py first.') from error
