from .scope_metric import ScopeMetric

__all__ = ['ScopeMetric']
