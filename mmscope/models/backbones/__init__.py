from .mamba_scope import MambaScope, ScopeOutput, refine_by_threshold
from .vision_mamba import VisionMamba

__all__ = ['MambaScope', 'ScopeOutput', 'VisionMamba', 'refine_by_threshold']
