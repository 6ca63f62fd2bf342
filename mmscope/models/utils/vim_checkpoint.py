"""Conversion and strict loading of Vision Mamba checkpoints.

The official Vim ImageNet checkpoints store their weights under the key
``model``. Besides the body they hold a classifier ``head``, a ``cls_token``
and a ``pos_embed`` of shape (1, N + 1, C) whose class-token entry sits in the
middle of the patch grid, at index ``N // 2``. Dense prediction uses neither
the head nor the class token, so both are dropped and the remaining N entries
are resampled to the grid of the model that loads them.
"""
import math
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from mmscope.models.layers.pos_embed import resample_pos_embed

# Keys of the official classification checkpoints that dense models drop.
CLASSIFIER_PREFIXES = ('head.', 'cls_token')


def unwrap_state_dict(checkpoint: dict, prefix: Optional[str] = None) -> dict:
    """Return the state dict stored in a checkpoint file's content.

    Args:
        checkpoint: What ``torch.load`` returned: a state dict, or a dict that
            contains one under ``model`` (official Vim files) or ``state_dict``
            (MMEngine and mmscope files).
        prefix: If given, keep only keys starting with it and strip it, for
            example ``'backbone.'`` for a whole segmentor's checkpoint.

    Returns:
        A new ordered dict; the input is not modified.

    Raises:
        KeyError: If ``prefix`` matches no key.
    """
    state_dict = checkpoint
    for wrapper in ('model', 'state_dict'):
        if isinstance(state_dict, dict) and isinstance(
                state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
            break

    if prefix:
        stripped = OrderedDict(
            (key[len(prefix):], value) for key, value in state_dict.items()
            if key.startswith(prefix))
        if not stripped:
            raise KeyError(
                f'No key of the checkpoint starts with prefix {prefix!r}; '
                f'its first keys are {list(state_dict)[:5]}. Remove the '
                'prefix from init_cfg or fix it.')
        return stripped
    return OrderedDict(state_dict)


def _fit_grid(pos_embed: torch.Tensor,
              grid_shape: Tuple[int, int]) -> torch.Tensor:
    """Resample a class-token-free position embedding to ``grid_shape``.

    A square number of entries is read as a square grid, as in the official
    Vim checkpoints, even when a non-square target grid has as many cells
    (a 6x6 source for a 4x9 model). Any other number of entries must equal
    the target's: it is then taken to come from a model with the same grid.
    """
    num_entries = pos_embed.shape[1]
    side = math.isqrt(num_entries)
    if side * side == num_entries:
        if tuple(grid_shape) == (side, side):
            return pos_embed
        return resample_pos_embed(pos_embed, (side, side), grid_shape)
    if num_entries == grid_shape[0] * grid_shape[1]:
        return pos_embed
    raise ValueError(
        f'Cannot infer the grid of a pos_embed with {num_entries} patch '
        'entries: it is not a square number and differs from the model\'s '
        f'{grid_shape[0]}x{grid_shape[1]} grid. Convert the checkpoint with '
        'tools/convert_vim_checkpoint.py for a square image size.')


def convert_vim_state_dict(state_dict: Dict[str, torch.Tensor],
                           pos_embed_grids: Dict[str, Tuple[int, int]],
                           ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Adapt a Vim classification state dict to a dense Vim backbone.

    Drops the classifier head and the class token, removes the class-token
    entry from ``pos_embed`` and resamples every position embedding to the
    model's grid. A position embedding that the model has but the checkpoint
    lacks (such as MambaScope's coarse one) is derived from ``pos_embed``.

    Args:
        state_dict: Unwrapped state dict; it is not modified.
        pos_embed_grids: Target grid (height, width) of each position
            embedding of the model, by key.

    Returns:
        The converted state dict and the list of keys that were dropped.
    """
    converted = OrderedDict()
    dropped = []
    for key, value in state_dict.items():
        if key.startswith(CLASSIFIER_PREFIXES):
            dropped.append(key)
            continue
        converted[key] = value

    source = converted.get('pos_embed')
    if source is not None and 'cls_token' in state_dict:
        # Vim inserts its class token in the middle of the patch sequence,
        # so its position entry is at index N // 2.
        middle = (source.shape[1] - 1) // 2
        source = torch.cat([source[:, :middle], source[:, middle + 1:]],
                           dim=1)
        converted['pos_embed'] = source

    for key, grid in pos_embed_grids.items():
        value = converted.get(key, source)
        if value is not None:
            converted[key] = _fit_grid(value, grid)
    return converted, dropped


def load_state_dict_checked(module: nn.Module,
                            state_dict: Dict[str, torch.Tensor],
                            allowed_missing: Iterable[str] = (),
                            source: str = 'checkpoint') -> List[str]:
    """Load ``state_dict`` into ``module``, raising on any unexpected change.

    Args:
        module: The module to load into.
        state_dict: Converted weights.
        allowed_missing: Key prefixes that the checkpoint may lack (layers
            the module adds on top of the Vim body); they keep their
            initial values.
        source: Name of the checkpoint, used in messages.

    Returns:
        The module keys that kept their initial values.

    Raises:
        RuntimeError: Listing every missing key, unexpected key and shape
            mismatch that is not allowed.
    """
    allowed = tuple(allowed_missing)
    model_state = module.state_dict()
    missing = [key for key in model_state if key not in state_dict]
    unexpected = [key for key in state_dict if key not in model_state]
    mismatched = [
        f'{key}: checkpoint {tuple(value.shape)} vs model '
        f'{tuple(model_state[key].shape)}'
        for key, value in state_dict.items()
        if key in model_state and value.shape != model_state[key].shape
    ]
    bad_missing = [key for key in missing if not key.startswith(allowed)]

    problems = []
    if bad_missing:
        problems.append(f'missing keys: {bad_missing}')
    if unexpected:
        problems.append(f'unexpected keys: {unexpected}')
    if mismatched:
        problems.append(f'shape mismatches: {mismatched}')
    if problems:
        raise RuntimeError(
            f'Cannot load {source} into {type(module).__name__}: ' +
            '; '.join(problems) + '. Check that the checkpoint and the '
            'backbone arch (embed_dims, num_layers, state_size, expand, '
            'patch_size) agree, or convert the checkpoint with '
            'tools/convert_vim_checkpoint.py.')

    module.load_state_dict(state_dict, strict=False)
    return missing
