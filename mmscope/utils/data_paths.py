"""Checks that the data sets and annotation files a config names exist.

Without these checks a missing data set ends in a traceback from the file
listing of mmseg or the COCO API, after the runner has been built.
"""
import os.path as osp
from typing import Iterator, List, Sequence, Tuple

from mmengine.config import Config

HOW_TO_FIX = ('Put the data set there (docs/getting_started.md), or point '
              'the config at it with {option}, for example {key}=PATH. The '
              'shipped data/ade20k_mini and data/coco_mini serve for a '
              'trial.')


def _dataset_paths(dataset: dict, key: str) -> Iterator[Tuple[str, str]]:
    """Yield (setting, path) for the folders and files a dataset reads.

    These are ``data_root``, ``ann_file`` and each ``data_prefix`` entry,
    the last two below ``data_root``.

    Wrapper datasets are followed through ``dataset`` and ``datasets``.
    """
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('dataset'), dict):
        yield from _dataset_paths(dataset['dataset'], f'{key}.dataset')
    for index, inner in enumerate(dataset.get('datasets') or []):
        yield from _dataset_paths(inner, f'{key}.datasets.{index}')

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
    """Exit with a message if a data folder or annotation file is missing.

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
