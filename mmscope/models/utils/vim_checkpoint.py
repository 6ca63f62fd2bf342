"""Conversion and strict loading of Vision Mamba checkpoints.

The official Vim ImageNet checkpoints store their weights under the key
``model``. Besides the body they hold a classifier ``head``, a ``cls_token``
and a ``pos_embed`` of shape (1, N + 1, C) whose class-token entry sits in the
middle of the patch grid, at index ``N // 2``. Dense prediction uses neither
the head nor the class token, so both are dropped and the remaining N entries
are resampled to the grid of the model that loads them.
"""
import logging
import math
from collections import OrderedDict
from numbers import Integral
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from mmscope.models.layers.pos_embed import resample_pos_embed
from mmscope.utils.checkpoint_match import (inner_state_dict, listed_keys,
                                            state_dict_differences)

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
    state_dict = inner_state_dict(checkpoint)
    if prefix:
        # As in MMEngine's Pretrained loading, 'backbone' means 'backbone.'.
        if not prefix.endswith('.'):
            prefix += '.'
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


def checked_grid(grid: object,
                 name: str = 'pos_embed_grid') -> Tuple[int, int]:
    """Return ``grid`` as (rows, columns) after checking it.

    Args:
        grid: A stated position grid: a list or tuple of two positive whole
            numbers.
        name: Name of the setting, used in the error message.

    Returns:
        The grid as a tuple of two ints.

    Raises:
        ValueError: If ``grid`` is not two positive whole numbers.
    """
    valid = (isinstance(grid, (list, tuple)) and len(grid) == 2 and all(
        isinstance(size, Integral) and not isinstance(size, bool)
        and size >= 1 for size in grid))
    if not valid:
        raise ValueError(
            f'{name} must be (rows, columns) with two positive whole '
            f'numbers, such as (32, 32), got {grid!r}.')
    return int(grid[0]), int(grid[1])


def _warn_guessed_grid(key: str, num_entries: int, grid: Sequence[int],
                       kind: str) -> None:
    """Log that the grid of a checkpoint's position embedding is a guess."""
    print_log(
        f"The checkpoint states no grid for its {key} of {num_entries} "
        f'entries, so it is read as {grid[0]}x{grid[1]}, {kind} grid. If the '
        'checkpoint was trained at another grid, add it to init_cfg as '
        'pos_embed_grid=(rows, columns).', logger='current',
        level=logging.WARNING)


def _source_grid(key: str, num_entries: int, model_grid: Tuple[int, int],
                 stated_grid: Optional[Sequence[int]],
                 official: bool) -> Tuple[int, int]:
    """Return the grid of a checkpoint position embedding.

    Args:
        key: Name of the embedding, used in messages.
        num_entries: Number of patch entries of the embedding.
        model_grid: Grid of the model's embedding that the checkpoint's
            embedding corresponds to.
        stated_grid: The checkpoint's grid where the checkpoint or the
            ``init_cfg`` states it, else None.
        official: Whether the checkpoint has the official Vim layout, whose
            grid is square.

    Returns:
        The grid (height, width). Without a stated grid, an official
        checkpoint's grid is square. Any other checkpoint with as many
        entries as ``model_grid`` is taken to have that grid, and else to
        have a square one. Both guesses are logged as warnings.

    Raises:
        ValueError: If the stated grid does not match ``num_entries`` or no
            grid fits.
    """
    if stated_grid is not None:
        height, width = checked_grid(stated_grid)
        if height * width != num_entries:
            raise ValueError(
                f'The checkpoint\'s {key} has {num_entries} patch entries, '
                f'but its stated grid {height}x{width} has {height * width}. '
                'Fix pos_embed_grid in init_cfg: it is the grid of the '
                'checkpoint\'s pos_embed.')
        return height, width

    if not official and num_entries == model_grid[0] * model_grid[1]:
        _warn_guessed_grid(key, num_entries, model_grid, "the model's")
        return tuple(model_grid)
    side = math.isqrt(num_entries)
    if side * side == num_entries:
        if not official:
            _warn_guessed_grid(key, num_entries, (side, side), 'a square')
        return side, side
    if official:
        raise ValueError(
            'Official Vim checkpoints have a square position grid, but this '
            f'one has {num_entries} patch entries besides the class token: '
            'it is not an official Vim ImageNet checkpoint, or it is damaged.')
    raise ValueError(
        f'Cannot infer the grid of the checkpoint\'s {key} with '
        f'{num_entries} patch entries: it is not a square number and differs '
        f'from the model\'s {model_grid[0]}x{model_grid[1]} grid. Add the '
        'grid of the checkpoint\'s pos_embed to init_cfg as '
        'pos_embed_grid=(rows, columns).')


def warn_unless_middle_class_token(checkpoint: object) -> None:
    """Log a warning when a file's training arguments name another layout.

    The official files pickle their training arguments under ``args``. Their
    model names contain ``midclstok``, and newer versions also store
    ``use_middle_cls_token``. The loader removes the class token's entry
    from the middle of ``pos_embed``, which is off by one for a file that
    put the class token first.

    Args:
        checkpoint: What ``torch.load`` returned for the file.
    """
    args = checkpoint.get('args') if isinstance(checkpoint, dict) else None
    name = getattr(args, 'model', None)
    middle = getattr(args, 'use_middle_cls_token', None)
    named_other = middle is None and isinstance(name, str) and \
        'midclstok' not in name
    if middle is False or named_other:
        print_log(
            f"The checkpoint's training arguments (model {name!r}, "
            f'use_middle_cls_token {middle!r}) do not name a middle class '
            "token. The class token's entry is removed from the middle of "
            'pos_embed, as in the official midclstok checkpoints. For a file '
            'whose class token comes first, every position entry is then off '
            'by one.', logger='current', level=logging.WARNING)


def _has_class_entry(pos_embed: torch.Tensor) -> bool:
    """Return whether a checkpoint's ``pos_embed`` has a class-token entry.

    Official checkpoints have a square grid plus the class token's entry. An
    embedding with a square number of entries, one less than which is not
    square, has no such entry; that is logged as a warning.
    """
    count = pos_embed.shape[1]
    if count < 2 or math.isqrt(count - 1) ** 2 == count - 1 or \
            math.isqrt(count) ** 2 != count:
        return True
    side = math.isqrt(count)
    print_log(
        f"The checkpoint has a cls_token, but its pos_embed has {count} = "
        f'{side}x{side} entries and so no class-token entry: all of them are '
        'read as the position grid.', logger='current', level=logging.WARNING)
    return False


def convert_vim_state_dict(
    state_dict: Dict[str, torch.Tensor],
    pos_embed_grids: Dict[str, Tuple[int, int]],
    source_grids: Optional[Dict[str, Sequence[int]]] = None,
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
        source_grids: Grid of each of the checkpoint's position embeddings,
            by key, where known; for ``pos_embed`` without the class token.
            An embedding derived from ``pos_embed`` has its grid. Grids not
            given are inferred as ``_source_grid`` describes.

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

    for key in pos_embed_grids:
        value = converted.get(key)
        if value is not None and (value.dim() != 3 or value.shape[0] != 1):
            raise ValueError(
                f"The checkpoint's {key} has shape {tuple(value.shape)}, but "
                'a position embedding has shape (1, entries, channels).')

    official = 'cls_token' in state_dict
    source = converted.get('pos_embed')
    if source is not None and official and _has_class_entry(source):
        # Vim inserts its class token in the middle of the patch sequence,
        # so its position entry is at index N // 2.
        middle = (source.shape[1] - 1) // 2
        source = torch.cat([source[:, :middle], source[:, middle + 1:]],
                           dim=1)
        converted['pos_embed'] = source

    source_grids = source_grids or {}
    model_pos_grid = pos_embed_grids.get('pos_embed')
    for key, grid in pos_embed_grids.items():
        if key in converted:
            name, value, reference = key, converted[key], grid
        elif source is not None:
            name, value, reference = 'pos_embed', source, (model_pos_grid
                                                           or grid)
        else:
            continue

        src = _source_grid(name, value.shape[1], reference,
                           source_grids.get(name), official)
        if src != tuple(grid):
            value = resample_pos_embed(value, src, grid)
            target = '' if name == key else f' for {key}'
            print_log(f"Resampled the checkpoint's {name} from the grid "
                      f'{src[0]}x{src[1]} to {grid[0]}x{grid[1]}{target} '
                      '(bicubic).', logger='current')
        converted[key] = value
    return converted, dropped


# Keys that a MambaScope checkpoint adds to the Vim body.
SCOPE_PREFIXES = ('coarse_pos_embed', 'reuse.', 'gate_head.')


def checkpoint_arch(state_dict: Dict[str, torch.Tensor]) -> Dict[str, int]:
    """Return the backbone settings that a Vim state dict's shapes show.

    Args:
        state_dict: Backbone weights with Vim key names.

    Returns:
        Those of ``embed_dims``, ``num_layers``, ``state_size`` and
        ``patch_size`` that the keys show.
    """
    arch = {}
    proj = state_dict.get('patch_embed.proj.weight')
    if isinstance(proj, torch.Tensor) and proj.dim() == 4:
        arch['embed_dims'] = proj.shape[0]
        arch['patch_size'] = proj.shape[-1]
    layers = {key.split('.')[1] for key in state_dict
              if key.startswith('layers.') and key.split('.')[1].isdigit()}
    if layers:
        arch['num_layers'] = max(int(index) for index in layers) + 1
    a_log = state_dict.get('layers.0.mixer.A_log')
    if isinstance(a_log, torch.Tensor) and a_log.dim() == 2:
        arch['state_size'] = a_log.shape[1]
    return arch


def _loading_fix(module: nn.Module, state_dict: Dict[str, torch.Tensor],
                 missing: List[str], unexpected: List[str]) -> str:
    """Return the advice for a checkpoint that does not fit the backbone."""
    unexpected_keys = set(unexpected)
    if any(f'backbone.{key}' in unexpected_keys for key in missing):
        return ("The checkpoint's keys start with 'backbone.', as in a "
                'checkpoint of a whole model that tools/train.py wrote: add '
                "prefix='backbone.' to init_cfg "
                '(model.backbone.init_cfg.prefix=backbone. in --cfg-options).')

    differences = {
        name: value for name, value in checkpoint_arch(state_dict).items()
        if getattr(module, name, value) != value
    }
    if differences:
        found = ', '.join(f'{name} {value}'
                          for name, value in differences.items())
        settings = ' '.join(f'model.backbone.{name}={value}'
                            for name, value in differences.items())
        return (f'The checkpoint has {found}. Set {settings} (and the '
                'in_channels of the decoder or neck to embed_dims), or use '
                'a checkpoint of this arch.')
    return ('Check that the checkpoint and the backbone arch (embed_dims, '
            'num_layers, state_size, expand, patch_size) agree, or convert an '
            'official Vim checkpoint with tools/convert_vim_checkpoint.py.')


def _drop_keys(state_dict: Dict[str, torch.Tensor], keys: List[str],
               reason: str, source: str) -> Dict[str, torch.Tensor]:
    """Return ``state_dict`` without ``keys``, logging why they are unused."""
    if not keys:
        return state_dict
    print_log(f'{source}: {reason}, so {len(keys)} keys keep their initial '
              f'values or are not used: {listed_keys(keys)}',
              logger='current', level=logging.WARNING)
    return OrderedDict((key, value) for key, value in state_dict.items()
                       if key not in keys)


def load_state_dict_checked(module: nn.Module,
                            state_dict: Dict[str, torch.Tensor],
                            allowed_missing: Iterable[str] = (),
                            source: str = 'checkpoint',
                            resizable: Iterable[str] = ()) -> List[str]:
    """Load ``state_dict`` into ``module``, raising on any unexpected change.

    Two differences are allowed and logged as warnings: the coarse-stage
    weights of a MambaScope checkpoint loaded into a plain Vim backbone are
    not used, and keys under ``resizable`` whose shapes differ keep their
    initial values.

    Args:
        module: The module to load into.
        state_dict: Converted weights; it is not modified.
        allowed_missing: Key prefixes that the checkpoint may lack (layers
            the module adds on top of the Vim body); they keep their
            initial values.
        source: Name of the checkpoint, used in messages.
        resizable: Key prefixes whose shapes depend on the task, such as
            the gate head's class count.

    Returns:
        The module keys that kept their initial values.

    Raises:
        RuntimeError: Listing every missing key, unexpected key and shape
            mismatch that is not allowed.
    """
    allowed = tuple(allowed_missing)
    _, unexpected, mismatched = state_dict_differences(
        module.state_dict(), state_dict)
    state_dict = _drop_keys(
        state_dict, [key for key in unexpected
                     if key.startswith(SCOPE_PREFIXES)],
        'the checkpoint is of a MambaScope backbone and its coarse-stage '
        f'weights have no place in {type(module).__name__}', source)
    state_dict = _drop_keys(
        state_dict, [line.split(':')[0] for line in mismatched
                     if line.startswith(tuple(resizable))],
        'the checkpoint has other shapes for task-dependent weights, such '
        'as the gate head of another class count', source)

    missing, unexpected, mismatched = state_dict_differences(
        module.state_dict(), state_dict)
    bad_missing = [key for key in missing
                   if not key.startswith(allowed + tuple(resizable))]
    problems = []
    if bad_missing:
        problems.append(f'{len(bad_missing)} missing keys: '
                        f'{listed_keys(bad_missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: '
                        f'{listed_keys(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches: '
                        f'{listed_keys(mismatched)}')
    if problems:
        raise RuntimeError(
            f'Cannot load {source} into {type(module).__name__}: ' +
            '; '.join(problems) + '. ' +
            _loading_fix(module, state_dict, bad_missing, unexpected))

    module.load_state_dict(state_dict, strict=False)
    return missing
