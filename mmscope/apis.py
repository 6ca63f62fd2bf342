"""Model loading and single-image inference for mmseg and mmdet configs."""
import copy
import logging
import os
import os.path as osp
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from mmscope.utils import (adapt_config_to_device, allow_runner_checkpoints,
                           check_checkpoint_matches)
from mmscope.utils.checkpoint_file import (check_checkpoint_file,
                                           damaged_file_errors)


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


def task_of(cfg: Config) -> str:
    """Return ``'seg'`` or ``'det'`` from the config's default scope."""
    scope = cfg.get('default_scope')
    if scope == 'mmseg':
        return 'seg'
    if scope == 'mmdet':
        return 'det'
    raise ValueError(f"Unsupported default_scope {scope!r}; mmscope tools "
                     "take mmseg ('mmseg') or mmdet ('mmdet') configs.")


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


def check_local_checkpoint(path: str) -> None:
    """Raise unless ``path`` is a file that starts like a PyTorch checkpoint.

    Raises:
        FileNotFoundError: If ``path`` is a folder or does not exist.
        ValueError: If the file is not a PyTorch checkpoint.
    """
    if osp.isdir(path):
        raise FileNotFoundError(f'checkpoint {path!r} is a folder; give the '
                                'path of a .pth file in it')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path!r}')
    check_checkpoint_file(path)


def init_scope_model(cfg: Union[Config, str, os.PathLike],
                     checkpoint: Optional[str],
                     device: Optional[str] = None) -> torch.nn.Module:
    """Build a segmentor or detector from ``cfg`` and load ``checkpoint``.

    Args:
        cfg: Config from :func:`load_config`, or the path of a config file.
            It is not modified.
        checkpoint: Checkpoint written by ``tools/train.py``, or ``None`` to
            keep the weights the model's constructors initialise.
        device: ``'cpu'``, ``'cuda'`` or ``None`` for CUDA when available.

    Returns:
        The model in evaluation mode.

    Raises:
        FileNotFoundError: If a local checkpoint file does not exist.
        ValueError: If the device is not available, the checkpoint is not a
            PyTorch checkpoint, or it lacks weights of the model or has
            other shapes for them.
    """
    # The mmseg and mmdet APIs edit the config they build from, so they get
    # a copy and the caller's config keeps its init_cfg and train_cfg.
    cfg = config_copy(cfg)
    device = checked_device(device)
    if checkpoint is not None and '://' not in str(checkpoint):
        check_local_checkpoint(str(checkpoint))
    allow_runner_checkpoints()
    with damaged_file_errors(str(checkpoint)):
        if task_of(cfg) == 'seg':
            from mmseg.apis import init_model
            model = init_model(cfg, checkpoint, device=device)
        else:
            from mmdet.apis import init_detector
            model = init_detector(cfg, checkpoint, device=device)

    if checkpoint is not None:
        check_checkpoint_matches(model, checkpoint)
    return model


def check_image_list(images: Sequence, gray_allowed: bool = True) -> None:
    """Check a list of images: all paths or all arrays, none empty.

    The mmseg and mmdet APIs choose the loading step from the first item, so
    a list that mixes paths and arrays cannot run.

    Args:
        images: List or tuple of paths or arrays.
        gray_allowed: Whether arrays without a colour axis are accepted.
    """
    if not images:
        raise ValueError('missing images: the list is empty. Give at least '
                         'one path or array')
    kinds = {isinstance(item, np.ndarray) for item in images}
    if len(kinds) > 1:
        raise ValueError('invalid list of images: it mixes paths and '
                         'arrays. Give all paths or all arrays')
    for item in images:
        if isinstance(item, (list, tuple)):
            raise TypeError('invalid image: got a nested list. Give a path '
                            'or a numpy array')
        check_image(item, gray_allowed)


def check_image_array(image: np.ndarray, gray_allowed: bool = True) -> None:
    """Raise a clear error for an array the inference pipelines cannot use.

    Args:
        image: BGR array of shape (H, W, 3), or (H, W) or (H, W, 1) where
            ``gray_allowed``, with uint8 values or floats in [0, 255].
        gray_allowed: Whether arrays without a colour axis are accepted.
            mmseg's pipeline takes them, and mmdet's data preprocessor needs
            three channels.

    Raises:
        ValueError: If the shape, dtype or values do not fit.
    """
    gray = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)
    colour = image.ndim == 3 and image.shape[2] == 3
    if not (colour or (gray and gray_allowed)):
        accepted = '(H, W), (H, W, 1) or (H, W, 3)' if gray_allowed else (
            '(H, W, 3)')
        raise ValueError(
            f'invalid image shape {image.shape}. Give {accepted} in BGR '
            'order, for example cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) for '
            'an image with an alpha channel or cv2.COLOR_GRAY2BGR for a '
            'grey one')
    if min(image.shape[:2]) == 0:
        raise ValueError(f'invalid image shape {image.shape}: height and '
                         'width must be at least 1')
    if image.dtype != np.uint8 and image.dtype.kind != 'f':
        raise ValueError(
            f'invalid image dtype {image.dtype}. Give uint8 values, or '
            'float values on the same 0 to 255 scale, for example '
            '(image / 256).astype(np.uint8) for a 16-bit image')
    if image.dtype.kind == 'f':
        check_float_scale(image)


def check_float_scale(image: np.ndarray) -> None:
    """Check that a float image is finite and on the 0 to 255 scale.

    The data preprocessors subtract means and divide by deviations given on
    the 0 to 255 scale, so other scales give wrong predictions.

    Args:
        image: Float array.

    Raises:
        ValueError: If a value is NaN, infinite or outside [0, 255].
    """
    if not np.isfinite(image).all():
        raise ValueError('invalid image values: the array holds NaN or '
                         'infinite values. Give finite values')
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 255:
        raise ValueError(
            f'invalid image values: they range from {low:g} to {high:g}. '
            'Give values on the 0 to 255 scale, as cv2.imread reads them')
    if 0 < high <= 1:
        print_log(
            f'The float image has values from {low:g} to {high:g}, which is '
            'nearly black on the 0 to 255 scale that the model takes. If '
            'the image is on the 0 to 1 scale, multiply it by 255.',
            logger='current', level=logging.WARNING)


def check_image(image, gray_allowed: bool = True) -> None:
    """Raise a clear error for an image the inference APIs cannot read.

    Args:
        image: Path, array as :func:`check_image_array` describes, or a list
            or tuple of these.
        gray_allowed: Whether arrays without a colour axis are accepted.

    Raises:
        FileNotFoundError: If a path is not a file.
        ValueError: If a file is not an image OpenCV reads, or an array has
            a shape, dtype or values the pipelines cannot use.
        TypeError: If the image is neither a path nor an array.
    """
    if isinstance(image, (list, tuple)):
        check_image_list(image, gray_allowed)
        return

    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not osp.isfile(path):
            raise FileNotFoundError(f'image file not found: {path!r}')
        if not cv2.haveImageReader(path):
            raise ValueError(f'invalid image file {path!r}: OpenCV cannot '
                             'read it. Give a JPEG or PNG file')
        return

    if not isinstance(image, np.ndarray):
        raise TypeError(f'invalid image: got {type(image).__name__}. Give '
                        'a path or a numpy array')
    check_image_array(image, gray_allowed)


def infer_image(model: torch.nn.Module, cfg: Union[Config, str, os.PathLike],
                image):
    """Run the standard single-image inference API of the config's task.

    Args:
        model: Model from :func:`init_scope_model`.
        cfg: Its config, or the path of the config file.
        image: Path or BGR array accepted by the mmseg/mmdet APIs, or a list
            of them. Detection needs three colour channels.

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
        # mmcv's LoadImageFromFile asserts that the image decoded, which
        # fails for a damaged file whose header OpenCV still recognises.
        if not str(error).startswith('failed to load image'):
            raise
        raise ValueError(f'invalid image file: {error}. The file is damaged '
                         'or truncated; copy or save it again') from error
    finally:
        model.cfg = model_cfg
