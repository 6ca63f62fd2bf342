"""Checks that a checkpoint sets every weight of the given model.

MMEngine's runner and the mmseg and mmdet inference APIs load checkpoints
non-strictly: a checkpoint of another model size loads with warnings only,
and the model then predicts from partly random weights. These checks reject
such a checkpoint before it is used.
"""
import copy
import logging
from typing import List, Mapping, NamedTuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from .checkpoint_file import check_checkpoint_file, damaged_file_errors

# Number of keys of each kind that an error message lists.
LISTED_KEYS = 8


class CheckpointMismatchError(ValueError):
    """A checkpoint file loads, but it does not set every weight of a model.
    """


def listed_keys(keys: List[str]) -> str:
    """Format the first keys of a list and how many there are."""
    listed = ', '.join(keys[:LISTED_KEYS])
    more = len(keys) - LISTED_KEYS
    return f'{listed}, and {more} more' if more > 0 else listed


class StateDictDifferences(NamedTuple):
    """Keys in which a checkpoint's state dict differs from a model's."""

    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]


def state_dict_differences(
        expected: Mapping[str, torch.Tensor],
        loaded: Mapping[str, torch.Tensor]) -> StateDictDifferences:
    """Compare the keys and shapes of two state dicts.

    Args:
        expected: The model's state dict.
        loaded: The checkpoint's state dict.

    Returns:
        The keys of ``expected`` that ``loaded`` lacks, the keys of
        ``loaded`` that ``expected`` lacks, and one ``'key: checkpoint
        (shape) vs model (shape)'`` line per key whose shapes differ.
    """
    missing = [key for key in expected if key not in loaded]
    unexpected = [key for key in loaded if key not in expected]
    mismatched = [
        f'{key}: checkpoint {tuple(value.shape)} vs model '
        f'{tuple(expected[key].shape)}'
        for key, value in loaded.items()
        if key in expected and hasattr(value, 'shape')
        and tuple(value.shape) != tuple(expected[key].shape)
    ]
    return StateDictDifferences(missing, unexpected, mismatched)


def checkpoint_mismatches(
        model: nn.Module,
        state_dict: Mapping[str, torch.Tensor]) -> StateDictDifferences:
    """Compare a checkpoint's state dict with a model's weights.

    Args:
        model: The model, or a wrapper such as DistributedDataParallel.
        state_dict: Weights by key, with any ``module.`` prefix that a
            wrapper added.

    Returns:
        The differences, as :func:`state_dict_differences` describes.
    """
    if is_model_wrapper(model):
        model = model.module
    unwrapped = {
        key[len('module.'):] if key.startswith('module.') else key: value
        for key, value in state_dict.items()
    }
    return state_dict_differences(model.state_dict(), unwrapped)


def inner_state_dict(checkpoint: object) -> object:
    """Return the state dict inside a checkpoint file's content.

    Args:
        checkpoint: What ``torch.load`` returned: a state dict, or a dict
            that contains one under ``state_dict`` (MMEngine and mmscope
            files) or ``model`` (official Vim files).

    Returns:
        The state dict, or ``checkpoint`` itself when it wraps none.
    """
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(wrapper), dict):
            return checkpoint[wrapper]
    return checkpoint


def contains_backbone_only(model: nn.Module, checkpoint: object) -> bool:
    """Return whether a checkpoint contains only the weights of the backbone.

    Args:
        model: A segmentor or detector with a ``backbone``.
        checkpoint: Loaded checkpoint content: a state dict, or a dict with
            one under ``state_dict`` or ``model`` (official Vim files).

    Returns:
        True when no key starts with ``backbone.`` but some keys are
        backbone weights of ``model`` once that prefix is added.
    """
    state_dict = inner_state_dict(checkpoint)
    if not isinstance(state_dict, dict):
        return False

    if is_model_wrapper(model):
        model = model.module
    model_keys = set(model.state_dict())
    prefixed = any(str(key).startswith('backbone.') for key in state_dict)
    return not prefixed and any(f'backbone.{key}' in model_keys
                                for key in state_dict)


def _load_content(path: str) -> object:
    """Load a checkpoint file's content with clear errors for bad files."""
    if '://' not in path:
        check_checkpoint_file(path)
    with damaged_file_errors(path):
        return CheckpointLoader.load_checkpoint(
            path, map_location='cpu', logger='current')


def _backbone_only_fix(path: str) -> str:
    """Return how to train from a checkpoint of backbone weights only."""
    return ('It contains backbone weights only, such as an official Vim '
            'checkpoint or one that tools/convert_vim_checkpoint.py wrote. '
            'Train from it with --cfg-options '
            'model.backbone.init_cfg.type=Pretrained '
            f'model.backbone.init_cfg.checkpoint={path}')


def check_checkpoint_matches(model: nn.Module, path: str) -> None:
    """Raise unless the checkpoint file sets every weight of ``model``.

    A checkpoint with keys that the model lacks still sets every weight,
    for example a MambaScope checkpoint tested with the Vim config of the
    same body. Those keys are logged as a warning.

    Args:
        model: The model the checkpoint is meant for.
        path: Checkpoint written by ``tools/train.py`` (weights under
            ``state_dict``) or a bare state dict.

    Raises:
        ValueError: If the file is not a PyTorch checkpoint or is damaged.
        CheckpointMismatchError: If the checkpoint lacks keys of the model
            or has other shapes for them.
    """
    checkpoint = _load_content(path)
    state_dict = inner_state_dict(checkpoint)

    missing, unexpected, mismatched = checkpoint_mismatches(model, state_dict)
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys: {listed_keys(missing)}')
    if mismatched:
        problems.append(
            f'{len(mismatched)} shape mismatches: {listed_keys(mismatched)}')
    if problems:
        fix = ('Use the config the checkpoint was trained with, including '
               'its --cfg-options.')
        if contains_backbone_only(model, checkpoint):
            fix = (_backbone_only_fix(path) + ', and give the checkpoint of '
                   'the whole trained model here.')
        raise CheckpointMismatchError(
            f'{path} does not contain the weights of this model: '
            + '; '.join(problems) + '. ' + fix)
    if unexpected:
        print_log(
            f'{path} has {len(unexpected)} keys that the model does not use: '
            f'{listed_keys(unexpected)}', logger='current',
            level=logging.WARNING)


def check_backbone_loaded(model: nn.Module, path: str,
                          min_share: float = 0.5) -> None:
    """Raise if a checkpoint sets few of the weights of the model's backbone.

    ``load_from`` loads non-strictly, so that a model with other heads can
    be fine-tuned from it. A checkpoint of another backbone would train
    from mostly random weights with warnings only.

    Args:
        model: A segmentor or detector with a ``backbone``.
        path: The checkpoint file or URL.
        min_share: Smallest accepted share of the backbone's parameter
            elements that the checkpoint sets with the model's shapes.

    Raises:
        ValueError: If the file is not a PyTorch checkpoint or is damaged.
        CheckpointMismatchError: If the checkpoint sets less than
            ``min_share`` of the backbone's parameters.
    """
    checkpoint = _load_content(path)
    missing, _, mismatched = checkpoint_mismatches(
        model, inner_state_dict(checkpoint))
    if is_model_wrapper(model):
        model = model.module
    unset = set(missing) | {line.split(':')[0] for line in mismatched}
    sizes = {key: parameter.numel()
             for key, parameter in model.named_parameters()
             if key.startswith('backbone.')}
    total = sum(sizes.values())
    covered = sum(size for key, size in sizes.items() if key not in unset)
    if not total or covered >= min_share * total:
        return

    fix = ('Give the checkpoint of a whole model whose backbone has the '
           'arch of this config.')
    if contains_backbone_only(model, checkpoint):
        fix = _backbone_only_fix(path) + ' and load_from=None.'
    raise CheckpointMismatchError(
        f'{path} sets {covered / total:.0%} of the backbone weights of this '
        'model, so training would start from mostly random weights. '
        f'{fix}')


def build_config_model(cfg: Config) -> nn.Module:
    """Build the model of a config, with the weights its constructors set.

    The model is built in the config's default scope and on the CPU. No
    checkpoint and no ``init_cfg`` is loaded. The config is not modified.

    Args:
        cfg: An mmseg or mmdet config.

    Returns:
        The model.
    """
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return MODELS.build(copy.deepcopy(cfg.model))
