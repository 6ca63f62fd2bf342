"""mmscope: MambaScope coarse-to-fine Vision Mamba for OpenMMLab."""
from . import engine, evaluation, models, utils  # noqa: F401  registers modules
from .version import __version__

__all__ = ['__version__']
