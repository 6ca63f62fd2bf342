from .backbones import MambaScope, ScopeOutput, VisionMamba
from .heads import ScopeGateHead

__all__ = ['MambaScope', 'ScopeGateHead', 'ScopeOutput', 'VisionMamba']

# The training wrappers subclass mmseg's and mmdet's models; each is
# available when its package is installed.
try:
    from .segmentors import ScopeEncoderDecoder  # noqa: F401
except ImportError:
    ScopeEncoderDecoder = None
else:
    __all__.append('ScopeEncoderDecoder')

try:
    from .detectors import ScopeMaskRCNN  # noqa: F401
except ImportError:
    ScopeMaskRCNN = None
else:
    __all__.append('ScopeMaskRCNN')
