"""Model loading and single-image inference for mmseg and mmdet configs."""
from typing import Optional

import torch
from mmengine.config import Config

from mmscope.utils import (adapt_config_to_device, allow_runner_checkpoints,
                           check_checkpoint_matches)


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config, apply overrides and adapt it to this machine's devices.

    Args:
        config: Path of an mmseg or mmdet config.
        cfg_options: Overrides such as ``{'model.backbone.threshold': 0.5}``.

    Returns:
        The config.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    adapt_config_to_device(cfg)
    return cfg


def task_of(cfg: Config) -> str:
    """Return ``'seg'`` or ``'det'`` from the config's default scope."""
    scope = cfg.get('default_scope')
    if scope == 'mmseg':
        return 'seg'
    if scope == 'mmdet':
        return 'det'
    raise ValueError(f"Unsupported default_scope {scope!r}; mmscope tools "
                     "take mmseg ('mmseg') or mmdet ('mmdet') configs.")


def init_scope_model(cfg: Config, checkpoint: Optional[str],
                     device: Optional[str] = None) -> torch.nn.Module:
    """Build a segmentor or detector from ``cfg`` and load ``checkpoint``.

    Args:
        cfg: Config from :func:`load_config`.
        checkpoint: Checkpoint written by ``tools/train.py``, or ``None`` to
            keep the weights the model's constructors initialise.
        device: ``'cpu'``, ``'cuda'`` or ``None`` for CUDA when available.

    Returns:
        The model in evaluation mode.

    Raises:
        ValueError: If the checkpoint lacks weights of the model or has
            other shapes for them.
    """
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    allow_runner_checkpoints()
    if task_of(cfg) == 'seg':
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    else:
        from mmdet.apis import init_detector
        model = init_detector(cfg, checkpoint, device=device)

    if checkpoint is not None:
        check_checkpoint_matches(model, checkpoint)
    return model


def infer_image(model: torch.nn.Module, cfg: Config, image):
    """Run the standard single-image inference API of the config's task.

    Args:
        model: Model from :func:`init_scope_model`.
        cfg: Its config.
        image: Path or RGB/BGR array accepted by the mmseg/mmdet APIs.

    Returns:
        The prediction data sample.
    """
    if task_of(cfg) == 'seg':
        from mmseg.apis import inference_model
        return inference_model(model, image)

    from mmdet.apis import inference_detector
    return inference_detector(model, image)
