from .scope_selection_hook import ScopeSelectionHook

__all__ = ['ScopeSelectionHook']
