"""Checks of the images given to the inference APIs, with clear messages.

The mmseg and mmdet pipelines accept arrays of any dtype and scale and
predict from them without a warning, so these checks reject what would
give wrong predictions.
"""
import logging
import os
import os.path as osp
from typing import Sequence

import cv2
import numpy as np
from mmengine.logging import print_log


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
        raise ValueError('invalid image values: the array contains NaN or '
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
        FileNotFoundError: If a path does not exist.
        IsADirectoryError: If a path is a folder.
        ValueError: If a file is not an image OpenCV reads, or an array has
            a shape, dtype or values the pipelines cannot use.
        TypeError: If the image is neither a path nor an array.
    """
    if isinstance(image, (list, tuple)):
        check_image_list(image, gray_allowed)
        return

    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if osp.isdir(path):
            raise IsADirectoryError(f'image path {path!r} is a folder; give '
                                    'the path of an image file in it, or a '
                                    'list of such paths')
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
