from .scope_gate_head import ScopeGateHead

__all__ = ['ScopeGateHead']
