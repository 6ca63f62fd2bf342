"""Registration of mmscope modules in the mmseg and mmdet registries.

Each shared class is registered once per registry, from this module, so
that a config built under either default scope (``mmseg`` or ``mmdet``)
finds it by its plain name. Either package alone is enough: a missing one is
skipped. The task wrappers ``ScopeEncoderDecoder`` and ``ScopeMaskRCNN``
register with their own package's ``MODELS`` in their modules.
"""
import importlib
from typing import Sequence, Type

_DOWNSTREAM_REGISTRIES = ('mmseg.registry', 'mmdet.registry')


def _register_in(cls: Type, registry_name: str,
                 packages: Sequence[str] = _DOWNSTREAM_REGISTRIES) -> Type:
    """Register ``cls`` in the registry ``registry_name`` of mmseg and mmdet.

    Args:
        cls: The class to register under its own name.
        registry_name: Attribute name of the registry, such as ``'MODELS'``.
        packages: Registry modules to register in.

    Returns:
        The class, unchanged, so the helpers below work as decorators.

    Raises:
        ImportError: If neither mmsegmentation nor mmdetection is installed.
    """
    registered = 0
    for package in packages:
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        getattr(module, registry_name).register_module(module=cls)
        registered += 1

    if registered == 0:
        raise ImportError(
            f'Cannot register {cls.__name__}: neither mmsegmentation 1.x nor '
            'mmdetection 3.x can be imported. Run tools/setup_env.sh or '
            'install one of them.')
    return cls


def register_model(cls: Type) -> Type:
    """Register a model class (backbone, head, segmentor, detector)."""
    return _register_in(cls, 'MODELS')


def register_hook(cls: Type) -> Type:
    """Register a runner hook class."""
    return _register_in(cls, 'HOOKS')


def register_metric(cls: Type) -> Type:
    """Register an evaluation metric class."""
    return _register_in(cls, 'METRICS')


def build_model_from_cfg(cfg: dict):
    """Build a module from ``cfg`` in the registry of the active scope.

    Under a default scope (set by the runner or the inference APIs) the
    scope's registry is used; otherwise mmseg's, or mmdet's if mmseg is
    missing. ``cfg`` is not modified.

    Args:
        cfg: Module config with a ``type`` key.

    Returns:
        The built module.
    """
    from mmengine.registry import MODELS, DefaultScope

    if DefaultScope.get_current_instance() is not None:
        return MODELS.build(dict(cfg))
    for package in _DOWNSTREAM_REGISTRIES:
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        return module.MODELS.build(dict(cfg))
    raise ImportError('Cannot build a module: neither mmsegmentation nor '
                      'mmdetection can be imported.')
