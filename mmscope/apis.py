"""Model loading and single-image inference for mmseg and mmdet configs."""
import copy
import inspect
import os
from typing import Optional, Union

import torch
from mmengine.config import Config

from mmscope.utils import (adapt_config_to_device, check_checkpoint_matches,
                           check_model_settings)
from mmscope.utils.checkpoint_file import (check_local_checkpoint,
                                           damaged_file_errors)
from mmscope.utils.checkpoint_match import build_config_model
from mmscope.utils.image_checks import check_image
from mmscope.utils.runner_checkpoints import runner_checkpoints_allowed


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


def config_copy(cfg: Union[Config, str, os.PathLike]) -> Config:
    """Return a copy of ``cfg`` that can be changed, or load it from a path.

    Args:
        cfg: Config from :func:`load_config`, or the path of a config file.

    Returns:
        A config that shares no objects with ``cfg``.

    Raises:
        TypeError: If ``cfg`` is neither a config nor a path.
    """
    if isinstance(cfg, (str, os.PathLike)):
        return load_config(os.fspath(cfg))
    if not isinstance(cfg, Config):
        raise TypeError(f'invalid cfg: got {type(cfg).__name__}. Give a '
                        'config from mmscope.apis.load_config or the path '
                        'of a config file')
    return copy.deepcopy(cfg)


def _task_of_model_class(model_type) -> Optional[str]:
    """Return the task of a model given as a class, or None."""
    if not inspect.isclass(model_type):
        return None
    try:
        from mmseg.models.segmentors import BaseSegmentor
        if issubclass(model_type, BaseSegmentor):
            return 'seg'
    except ImportError:
        pass
    try:
        from mmdet.models.detectors import BaseDetector
        if issubclass(model_type, BaseDetector):
            return 'det'
    except ImportError:
        pass
    return None


def task_of(cfg: Config) -> str:
    """Return ``'seg'`` or ``'det'`` for an mmseg or mmdet config.

    The default scope decides. A pure-Python config without one, whose
    model type is a class, is recognised by that class.

    Raises:
        ValueError: If the config is neither.
    """
    scope = cfg.get('default_scope')
    if scope == 'mmseg':
        return 'seg'
    if scope == 'mmdet':
        return 'det'
    model = cfg.get('model')
    task = _task_of_model_class(
        model.get('type') if isinstance(model, dict) else None)
    if scope is None and task is not None:
        return task
    raise ValueError(f"Unsupported default_scope {scope!r}; mmscope tools "
                     "take mmseg ('mmseg') or mmdet ('mmdet') configs, or "
                     'pure-Python configs whose model type is an mmseg '
                     'segmentor or mmdet detector class.')


def checked_device(device: Optional[str]) -> str:
    """Return the device to use, after checking that it exists here.

    Args:
        device: A PyTorch device such as ``'cpu'`` or ``'cuda:0'``, or
            ``None`` for CUDA when available and the CPU otherwise.

    Returns:
        The device.

    Raises:
        ValueError: If the device is not a PyTorch device, or it is a CUDA
            device and this PyTorch build finds none.
    """
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a PyTorch device. Use "
                         "'cpu' or 'cuda'.") from error
    if kind == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r}: this PyTorch '
                         f'({torch.__version__}) finds no CUDA device. Use '
                         "'cpu'.")
    return device


def check_checkpoint_source(cfg: Config, checkpoint: str) -> None:
    """Raise unless ``checkpoint`` sets every weight of the config's model.

    The check runs on a model of its own before the mmseg or mmdet API
    loads the file, so a checkpoint that does not fit gives one error and
    none of MMEngine's size-mismatch warnings.

    Args:
        cfg: The config the model is built from. It is not modified.
        checkpoint: A local path or a URL.

    Raises:
        FileNotFoundError: If a local checkpoint file does not exist.
        ValueError: If the file is not a PyTorch checkpoint, or it lacks
            weights of the model or has other shapes for them.
    """
    if '://' not in checkpoint:
        check_local_checkpoint(checkpoint)
    check_checkpoint_matches(build_config_model(cfg), checkpoint)


def init_scope_model(cfg: Union[Config, str, os.PathLike],
                     checkpoint: Optional[str],
                     device: Optional[str] = None) -> torch.nn.Module:
    """Build a segmentor or detector from ``cfg`` and load ``checkpoint``.

    Args:
        cfg: Config from :func:`load_config`, or the path of a config file.
            It is not modified.
        checkpoint: Checkpoint written by ``tools/train.py``, or ``None`` to
            keep the weights the model's constructors initialise. It is read
            with PyTorch's full unpickler, which MMEngine's runner
            checkpoints need, so load only checkpoints you trust. The rest
            of the process keeps PyTorch's default.
        device: ``'cpu'``, ``'cuda'`` or ``None`` for CUDA when available.

    Returns:
        The model in evaluation mode.

    Raises:
        FileNotFoundError: If a local checkpoint file does not exist.
        ValueError: If the device is not available, a head does not fit
            the backbone or the data set (see
            :func:`mmscope.utils.check_model_settings`), the checkpoint is
            not a PyTorch checkpoint, or it lacks weights of the model or has
            other shapes for them.
    """
    # The mmseg and mmdet APIs edit the config they build from, so they get
    # a copy and the caller's config keeps its init_cfg and train_cfg.
    cfg = config_copy(cfg)
    task = task_of(cfg)
    check_model_settings(cfg)
    device = checked_device(device)
    with runner_checkpoints_allowed():
        if checkpoint is not None:
            check_checkpoint_source(cfg, str(checkpoint))

        with damaged_file_errors(str(checkpoint)):
            if task == 'seg':
                from mmseg.apis import init_model
                model = init_model(cfg, checkpoint, device=device)
            else:
                from mmdet.apis import init_detector
                model = init_detector(cfg, checkpoint, device=device)
    return model


def _inference_error(error: AssertionError) -> Exception:
    """Return a clear error for an assertion of the mmseg or mmdet API.

    mmcv's ``LoadImageFromFile`` asserts that the image decoded, which fails
    for a damaged file whose header OpenCV still recognises. mmseg's
    ``inference_model`` asserts that the images of a list have one size.
    Other assertions are returned as they are.
    """
    message = str(error)
    if message.startswith('failed to load image'):
        return ValueError(f'invalid image file: {message}. The file is '
                          'damaged or truncated; copy or save it again')
    if 'image size in a batch should be the same' in message:
        return ValueError('invalid list of images: mmseg segments a list '
                          'only when all its images have one size. Call '
                          'infer_image once per image, or resize them to '
                          'one size first')
    return error


def infer_image(model: torch.nn.Module, cfg: Union[Config, str, os.PathLike],
                image):
    """Run the standard single-image inference API of the config's task.

    Args:
        model: Model from :func:`init_scope_model`.
        cfg: Its config, or the path of the config file.
        image: Path or BGR array accepted by the mmseg/mmdet APIs, or a list
            of them, as :func:`mmscope.utils.image_checks.check_image`
            describes. Detection needs three colour channels, and the images
            of a list for segmentation need one size.

    Returns:
        The prediction data sample, or a list of them for a list of images.
    """
    task = task_of(cfg if isinstance(cfg, Config) else config_copy(cfg))
    check_image(image, gray_allowed=task == 'seg')

    # The mmseg and mmdet APIs edit the model's config for array inputs
    # (they swap the first pipeline step), which breaks later calls with a
    # path. They get a copy, and the model keeps its config.
    model_cfg = model.cfg
    model.cfg = copy.deepcopy(model_cfg)
    try:
        if task == 'seg':
            from mmseg.apis import inference_model
            return inference_model(model, image)

        from mmdet.apis import inference_detector
        return inference_detector(model, image)
    except AssertionError as error:
        raise _inference_error(error) from error
    finally:
        model.cfg = model_cfg
