"""Checks that the data sets and annotation files a config names exist.

Without these checks a missing data set ends in a traceback from the file
listing of mmseg or the COCO API, after the runner has been built.
"""
import inspect
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.registry import DATASETS

HOW_TO_FIX = ('Put the data set there (docs/getting_started.md), or point '
              'the config at it with {option}, for example {key}=PATH. The '
              'shipped data/ade20k_mini and data/coco_mini serve for a '
              'trial.')


def _datasets(dataset: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield (setting, dataset) for a dataset config and those it wraps.

    Wrapper datasets are followed through ``dataset`` and ``datasets``. The
    wrapped datasets come before the wrapper.
    """
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('dataset'), dict):
        yield from _datasets(dataset['dataset'], f'{key}.dataset')
    for index, inner in enumerate(dataset.get('datasets') or []):
        yield from _datasets(inner, f'{key}.datasets.{index}')
    yield key, dataset


def _dataset_paths(dataset: dict, key: str) -> Iterator[Tuple[str, str]]:
    """Yield (setting, path) for the folders and files a dataset reads.

    These are ``data_root``, ``ann_file`` and each ``data_prefix`` entry,
    the last two below ``data_root``, of the dataset and those it wraps.
    """
    for key, dataset in _datasets(dataset, key):
        data_root = dataset.get('data_root')
        if data_root:
            yield f'{key}.data_root', data_root
        ann_file = dataset.get('ann_file')
        if ann_file:
            yield f'{key}.ann_file', osp.join(data_root or '', ann_file)
        prefixes = dataset.get('data_prefix')
        if isinstance(prefixes, dict):
            for name, prefix in prefixes.items():
                if isinstance(prefix, str) and prefix:
                    yield (f'{key}.data_prefix.{name}',
                           osp.join(data_root or '', prefix))


def _image_folders(dataset: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield (setting, dataset) for the datasets that list an image folder.

    These datasets (mmseg's) have a ``data_prefix.img_path`` and no
    ``ann_file``, so they read every file in the folder that ends with
    ``img_suffix``. Wrapped datasets are included.
    """
    for key, dataset in _datasets(dataset, key):
        prefixes = dataset.get('data_prefix')
        if isinstance(prefixes, dict) and isinstance(
                prefixes.get('img_path'), str) and not dataset.get('ann_file'):
            yield key, dataset


def _image_suffix(dataset: dict, scope: str) -> Optional[str]:
    """Return the ``img_suffix`` a dataset uses: its own or its type's."""
    suffix = dataset.get('img_suffix')
    if suffix is None:
        dataset_type = dataset.get('type')
        if isinstance(dataset_type, str):
            with DATASETS.switch_scope_and_registry(scope) as registry:
                dataset_type = registry.get(dataset_type)
        if not inspect.isclass(dataset_type):
            return None
        parameter = inspect.signature(
            dataset_type.__init__).parameters.get('img_suffix')
        suffix = None if parameter is None else parameter.default
    return suffix if isinstance(suffix, str) else None


def _has_file_ending(folder: str, suffix: str) -> bool:
    """Return whether ``folder`` or a folder below it has such a file."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(name.endswith(suffix) for name in files):
            return True
    return False


def empty_image_folders(cfg: Config, stages: Sequence[str]) -> List[str]:
    """Return one line per existing image folder without matching images.

    Args:
        cfg: The config.
        stages: Stages whose data to check, as in
            :func:`missing_data_paths`.

    Returns:
        Lines ``'setting: folder has no file ending in SUFFIX'``, empty
        when every folder has images. Folders that do not exist are left to
        :func:`missing_data_paths`.
    """
    scope = cfg.get('default_scope', 'mmengine')
    empty = []
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        if not loader:
            continue
        for key, dataset in _image_folders(loader.get('dataset'),
                                           f'{stage}_dataloader.dataset'):
            folder = osp.join(dataset.get('data_root') or '',
                              dataset['data_prefix']['img_path'])
            suffix = _image_suffix(dataset, scope)
            if suffix is None or not osp.isdir(folder) or \
                    _has_file_ending(folder, suffix):
                continue
            line = (f'{key}.data_prefix.img_path: {folder} has no file '
                    f'ending in {suffix!r} ({key}.img_suffix)')
            if line not in empty:
                empty.append(line)
    return empty


def _evaluator_paths(evaluator, key: str) -> Iterator[Tuple[str, str]]:
    """Yield (setting, path) for the annotation files of an evaluator."""
    if isinstance(evaluator, (list, tuple)):
        for index, metric in enumerate(evaluator):
            yield from _evaluator_paths(metric, f'{key}.{index}')
    elif isinstance(evaluator, dict) and evaluator.get('ann_file'):
        yield f'{key}.ann_file', evaluator['ann_file']


def missing_data_paths(cfg: Config, stages: Sequence[str]) -> List[str]:
    """Return one line per data folder or annotation file that is missing.

    Args:
        cfg: The config.
        stages: Stages whose data to check, of ``'train'``, ``'val'`` and
            ``'test'``. A stage without a dataloader in ``cfg`` is skipped.

    Returns:
        Lines ``'setting: path'``, empty when everything exists. Paths with
        a URL scheme are not checked.
    """
    found = []
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        if not loader:
            continue
        found += _dataset_paths(loader.get('dataset'),
                                f'{stage}_dataloader.dataset')
        found += _evaluator_paths(cfg.get(f'{stage}_evaluator'),
                                  f'{stage}_evaluator')

    missing = []
    for setting, path in found:
        if '://' in str(path) or osp.exists(path):
            continue
        line = f'{setting}: {path}'
        if line not in missing:
            missing.append(line)
    return missing


def check_data_paths(cfg: Config, stages: Sequence[str],
                     option: str = '--cfg-options') -> None:
    """Exit with a message if the data that a config names is missing.

    That is a missing data folder or annotation file, or an image folder
    without images that its dataset would read.

    Args:
        cfg: The config.
        stages: Stages whose data to check, as in :func:`missing_data_paths`.
        option: The argument that overrides entries of ``cfg``, named in the
            message.
    """
    missing = missing_data_paths(cfg, stages)
    if missing:
        key = missing[0].split(':')[0]
        raise SystemExit('Data not found:\n  ' + '\n  '.join(missing) +
                         '\n' + HOW_TO_FIX.format(option=option, key=key))
    empty = empty_image_folders(cfg, stages)
    if empty:
        raise SystemExit(
            'No images found:\n  ' + '\n  '.join(empty) + '\nSet '
            'img_suffix to the ending of the image files, or point '
            f'data_prefix.img_path at their folder with {option}.')
