"""Checks that a config's heads agree with its backbone and its data set.

Without these checks, a decoder whose input width differs from the
backbone's fails inside the first forward pass with a bare convolution
error. A head with more classes than the data set trains without a
warning, and the metrics silently drop the extra labels.
"""
import inspect
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.registry import DATASETS

# Model keys of the heads whose class count must equal the data set's.
CLASS_HEADS = ('decode_head', 'auxiliary_head', 'backbone.gate_head',
               'roi_head.bbox_head', 'roi_head.mask_head', 'bbox_head')

# Model keys of the heads that take the backbone's maps in a model without
# a neck. With a neck, only the neck (the first of a list) takes them.
HEADS_ON_BACKBONE = ('decode_head', 'auxiliary_head')

# Backbones whose maps all have ``embed_dims`` channels.
VIM_BACKBONES = ('VisionMamba', 'MambaScope')


def _module_entries(model: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield (setting, module config) for a dotted key of a model config.

    A list of modules, such as several auxiliary heads, yields each entry.
    """
    node = model
    for part in key.split('.'):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        yield f'model.{key}', node
    elif isinstance(node, (list, tuple)):
        for index, entry in enumerate(node):
            if isinstance(entry, dict):
                yield f'model.{key}.{index}', entry


def type_name(module: dict) -> str:
    """Return the class name of a module config's ``type``, without scope.

    The type may be a registry name, with or without a scope prefix such
    as ``mmseg.``, or the class itself in a pure-Python config.
    """
    kind = module.get('type', '')
    if inspect.isclass(kind):
        return kind.__name__
    return str(kind).split('.')[-1]


def backbone_width(backbone: dict) -> Optional[int]:
    """Return the channel count of a Vim backbone's maps, or None.

    Args:
        backbone: The ``model.backbone`` config.

    Returns:
        ``embed_dims``, or the width of the ``arch`` preset, for a
        ``VisionMamba`` or ``MambaScope`` backbone; None for other types.
    """
    from mmscope.models.backbones.vision_mamba import (ARCH_SETTINGS,
                                                       DEFAULT_ARCH)
    if type_name(backbone) not in VIM_BACKBONES:
        return None
    width = backbone.get('embed_dims')
    if width is not None:
        return width
    preset = ARCH_SETTINGS.get(str(backbone.get('arch', DEFAULT_ARCH)))
    return preset['embed_dims'] if preset else None


def _backbone_inputs(model: dict) -> List[Tuple[str, dict]]:
    """Return (setting, module config) of the modules fed by the backbone."""
    neck = model.get('neck')
    if isinstance(neck, (list, tuple)):
        first = neck[0] if neck else None
        return [('model.neck.0', first)] if isinstance(first, dict) else []
    if isinstance(neck, dict):
        return [('model.neck', neck)]
    return [entry for key in HEADS_ON_BACKBONE
            for entry in _module_entries(model, key)]


def _channel_problems(model: dict) -> List[str]:
    """Return one line per module whose input width is not the backbone's."""
    width = backbone_width(model.get('backbone') or {})
    if width is None:
        return []

    problems = []
    for setting, module in _backbone_inputs(model):
        channels = module.get('in_channels')
        if isinstance(channels, (list, tuple)):
            expected = [width] * len(channels)
            wrong = list(channels) != expected
        else:
            expected = width
            wrong = channels is not None and channels != width
        if wrong:
            problems.append(
                f'{setting}.in_channels is {channels!r}, but the backbone '
                f'gives maps of {width} channels (model.backbone.embed_dims, '
                f'or the width of its arch). Set {setting}.in_channels='
                f'{expected!r}.')
    return problems


def _innermost_dataset(dataset, setting: str) -> Tuple[object, str]:
    """Follow ``dataset`` and first ``datasets`` entries of wrappers."""
    while isinstance(dataset, dict):
        inner = dataset.get('dataset')
        if not isinstance(inner, dict):
            datasets = dataset.get('datasets')
            if not isinstance(datasets, (list, tuple)) or not datasets:
                break
            inner, key = datasets[0], 'datasets.0'
        else:
            key = 'dataset'
        dataset, setting = inner, f'{setting}.{key}'
    return dataset, setting


def _dataset_classes(cfg: Config,
                     stages: Sequence[str]) -> Optional[Tuple[int, str]]:
    """Return the class count of the config's data set and where it is set.

    The first dataloader of ``stages`` decides. Its ``metainfo`` names the
    classes, or else the dataset type's own ``METAINFO``. A wrapper counts
    the classes of the dataset it wraps, and a ``ConcatDataset`` those of its
    first dataset, because MMEngine requires the same classes in all of
    them. Classes read from a file are not counted.
    """
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        dataset = loader.get('dataset') if isinstance(loader, dict) else None
        dataset, setting = _innermost_dataset(dataset,
                                              f'{stage}_dataloader.dataset')
        if not isinstance(dataset, dict):
            continue

        metainfo = dataset.get('metainfo')
        classes = metainfo.get('classes') if isinstance(metainfo,
                                                       dict) else None
        if classes is not None:
            if not isinstance(classes, (list, tuple)):
                return None
            return len(classes), f'{setting}.metainfo.classes'
        dataset_type = dataset.get('type')
        if isinstance(dataset_type, str):
            scope = cfg.get('default_scope', 'mmengine')
            with DATASETS.switch_scope_and_registry(scope) as registry:
                dataset_type = registry.get(dataset_type)
        classes = getattr(dataset_type, 'METAINFO', {}).get('classes')
        if classes:
            name = getattr(dataset_type, '__name__', dataset_type)
            return len(classes), f'the classes of {name} in {setting}'
        return None
    return None


def _class_problems(cfg: Config, stages: Sequence[str]) -> List[str]:
    """Return one line per head whose class count differs from the others'.

    The data set's class count is the reference where ``stages`` give it,
    and else the first head's.
    """
    heads = [(setting, module['num_classes'])
             for key in CLASS_HEADS
             for setting, module in _module_entries(cfg.model, key)
             if isinstance(module.get('num_classes'), int)]
    if not heads:
        return []

    found = _dataset_classes(cfg, stages)
    if found is not None:
        count, source = found
        reference = f'the data set has {count} classes ({source})'
    else:
        first, count = heads[0]
        reference = f'{first}.num_classes is {count}'
    return [
        f'{setting}.num_classes is {value}, but {reference}. Set '
        f'{setting}.num_classes={count}.'
        for setting, value in heads if value != count
    ]


def check_model_settings(cfg: Config, stages: Sequence[str] = ()) -> None:
    """Raise if the heads of ``cfg`` do not fit its backbone or data set.

    Only models with a ``VisionMamba`` or ``MambaScope`` backbone are
    checked. Other mmseg and mmdet models have heads that predict other
    label sets on purpose, such as STDC's boundary head or the thing
    classes of a panoptic model.

    Args:
        cfg: An mmseg or mmdet config.
        stages: Stages of ``'train'``, ``'val'`` and ``'test'`` whose
            dataloader gives the class count; the first one present
            decides. Without stages, the heads are compared with each other
            only.

    Raises:
        ValueError: Listing each head whose ``in_channels`` differ from the
            width of a Vim backbone, and each head whose ``num_classes``
            differs from the data set's class count, with the fix.
    """
    if not isinstance(cfg.get('model'), dict) or backbone_width(
            cfg.model.get('backbone') or {}) is None:
        return
    problems = _channel_problems(cfg.model) + _class_problems(cfg, stages)
    if problems:
        raise ValueError(' '.join(problems))
