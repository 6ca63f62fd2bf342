from .mamba_scope import MambaScope, ScopeOutput
from .vision_mamba import VisionMamba

__all__ = ['MambaScope', 'ScopeOutput', 'VisionMamba']
