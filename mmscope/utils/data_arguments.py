"""Checks the type names and arguments of a config's data and metrics.

The runner builds the datasets, their pipelines and the evaluators only when
a loop starts, so a misspelt type or argument name ends in a traceback after
the work folder has been set up. Some classes, such as mmseg's ``IoUMetric``,
take ``**kwargs`` and drop what they do not know, so a misspelt argument
there is ignored without a message.
"""
import difflib
import inspect
from typing import FrozenSet, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.registry import (DATASETS, EVALUATOR, METRICS, TRANSFORMS,
                               Registry)

from .data_paths import _datasets

# Keys of a module config that the registry reads, not the class.
REGISTRY_KEYS = frozenset({'type', '_scope_'})


def accepted_arguments(cls: type) -> Optional[FrozenSet[str]]:
    """Return the keyword arguments that constructing ``cls`` accepts.

    An ``__init__`` that takes ``**kwargs`` is taken to pass them on to the
    next ``__init__`` in the method resolution order, as most mmseg, mmdet
    and MMEngine classes do.

    Args:
        cls: The class.

    Returns:
        The argument names, or None when the class accepts any name: its
        chain of ``__init__`` methods ends in ``**kwargs`` that no base
        class names.
    """
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object:
            return None
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        names.update(parameter.name for parameter in parameters
                     if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD,
                                           parameter.KEYWORD_ONLY))
        if not any(parameter.kind == parameter.VAR_KEYWORD
                   for parameter in parameters):
            return frozenset(names)
    return None


def _registered_names(registry: Registry) -> List[str]:
    """Return the names registered in ``registry`` and its parents."""
    names = []
    while registry is not None:
        names += list(registry.module_dict)
        registry = registry.parent
    return names


def _closest(name: str, candidates: Sequence[str]) -> str:
    """Return ``" (did you mean 'X'?)"`` for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ''


def _resolved_type(module: dict, registry: Registry, scope: str):
    """Return the class a module config's ``type`` names, or None.

    A type that is not a string (a class in a pure-Python config) is
    returned as it is.
    """
    kind = module.get('type')
    if not isinstance(kind, str):
        return kind
    with registry.switch_scope_and_registry(module.get('_scope_',
                                                       scope)) as scoped:
        return scoped.get(kind)


def module_problems(module: dict, setting: str, registry: Registry,
                    scope: str) -> List[str]:
    """Return one line per unknown type or argument of a module config.

    Args:
        module: The module config, with its ``type``.
        setting: The module's key in the config, used in the messages.
        registry: The registry that builds the module.
        scope: The config's default scope.

    Returns:
        A line for a type that is not registered, or one per argument that
        the type does not take, each with the closest accepted name. Empty
        for types that are not classes or that accept any argument.
    """
    kind = module.get('type')
    if kind is None:
        return [f'{setting}.type: missing; every {registry.name} config '
                'names its type']
    cls = _resolved_type(module, registry, scope)
    if cls is None:
        with registry.switch_scope_and_registry(module.get('_scope_',
                                                           scope)) as scoped:
            hint = _closest(kind, _registered_names(scoped))
        return [f"{setting}.type: '{kind}' is not a registered "
                f'{registry.name} type{hint}']
    if not inspect.isclass(cls):
        return []

    accepted = accepted_arguments(cls)
    if accepted is None:
        return []
    return [
        f'{setting}.{name}: {cls.__name__} takes no argument '
        f"'{name}'{_closest(name, sorted(accepted))}"
        for name in module
        if name not in accepted and name not in REGISTRY_KEYS
    ]


# Keys under which mmcv's wrappers and their mmdet subclasses (AutoAugment,
# RandAugment) keep the pipelines they build from the registry.
NESTED_PIPELINE_KEYS = ('transforms', 'policies', 'aug_space')


def _builds_nested_transforms(transform: dict, scope: str) -> bool:
    """Return whether a transform builds nested pipelines from the registry.

    mmcv's wrappers (``TestTimeAug``, ``RandomChoice``, ``Compose`` and
    others) and their subclasses do. ``Albu`` and similar transforms hold
    configs of another library, which the registry does not know.
    """
    from mmcv.transforms import TestTimeAug
    from mmcv.transforms.wrappers import (Compose, KeyMapper, RandomApply,
                                          RandomChoice, TransformBroadcaster)
    kind = _resolved_type(transform, TRANSFORMS, scope)
    wrappers = (Compose, KeyMapper, RandomApply, RandomChoice,
                TransformBroadcaster, TestTimeAug)
    return inspect.isclass(kind) and issubclass(kind, wrappers)


def _transforms(pipeline, key: str,
                scope: str) -> Iterator[Tuple[str, dict]]:
    """Yield (setting, transform) for a pipeline and the ones it nests.

    Nested pipelines are the ``transforms`` of mmcv's wrappers, such as
    ``TestTimeAug`` or ``RandomChoice``, which may be lists of lists.
    """
    if not isinstance(pipeline, (list, tuple)):
        return
    for index, entry in enumerate(pipeline):
        setting = f'{key}.{index}'
        if isinstance(entry, (list, tuple)):
            yield from _transforms(entry, setting, scope)
        elif isinstance(entry, dict):
            yield setting, entry
            if _builds_nested_transforms(entry, scope):
                for name in NESTED_PIPELINE_KEYS:
                    yield from _transforms(entry.get(name),
                                           f'{setting}.{name}', scope)


def _evaluator_problems(evaluator, key: str, scope: str) -> List[str]:
    """Return the problems of an evaluator config, a metric or a list.

    As MMEngine's runner builds it, a dict with ``metrics`` is an evaluator
    (``type`` defaults to ``Evaluator``) and any other dict a metric.
    """
    if isinstance(evaluator, (list, tuple)):
        return [problem for index, metric in enumerate(evaluator)
                for problem in _evaluator_problems(metric, f'{key}.{index}',
                                                   scope)]
    if not isinstance(evaluator, dict):
        return []
    if 'metrics' in evaluator:
        typed = dict(evaluator)
        typed.setdefault('type', 'Evaluator')
        return module_problems(typed, key, EVALUATOR, scope) + \
            _evaluator_problems(evaluator['metrics'], f'{key}.metrics', scope)
    return module_problems(evaluator, key, METRICS, scope)


def data_argument_problems(cfg: Config, stages: Sequence[str]) -> List[str]:
    """Return one line per unknown type or argument of a stage's data.

    Args:
        cfg: The config.
        stages: Stages of ``'train'``, ``'val'`` and ``'test'``. Their
            datasets (with those they wrap), the transforms of the datasets'
            pipelines and their evaluators are checked.

    Returns:
        Lines ``'setting: problem'`` as in :func:`module_problems`.
    """
    scope = cfg.get('default_scope', 'mmengine')
    problems = []
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        if isinstance(loader, dict):
            for key, dataset in _datasets(loader.get('dataset'),
                                          f'{stage}_dataloader.dataset'):
                problems += module_problems(dataset, key, DATASETS, scope)
                for setting, transform in _transforms(
                        dataset.get('pipeline'), f'{key}.pipeline', scope):
                    problems += module_problems(transform, setting,
                                                TRANSFORMS, scope)
        problems += _evaluator_problems(cfg.get(f'{stage}_evaluator'),
                                        f'{stage}_evaluator', scope)

    unique = []
    for line in problems:
        if line not in unique:
            unique.append(line)
    return unique


def check_data_arguments(cfg: Config, stages: Sequence[str],
                         option: str = '--cfg-options') -> None:
    """Exit with a message if a stage's data or metric settings are invalid.

    Invalid are a type that is missing or not registered, and an argument
    that its type does not take.

    Args:
        cfg: The config.
        stages: Stages to check, as in :func:`data_argument_problems`.
        option: The argument that overrides entries of ``cfg``, named in the
            message.
    """
    problems = data_argument_problems(cfg, stages)
    if problems:
        raise SystemExit(
            'Invalid data or metric settings:\n  ' + '\n  '.join(problems) +
            f'\nCorrect these settings in the config or in {option}.')
