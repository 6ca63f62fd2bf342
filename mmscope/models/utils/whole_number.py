"""Type check for settings that count things, such as widths or classes."""
from numbers import Integral


def is_whole_number(value: object) -> bool:
    """Return whether ``value`` is an integer, NumPy's included.

    A bool is not one, although Python's ``bool`` subclasses ``int``, so
    that ``True`` given for a size is rejected rather than read as 1.
    """
    return isinstance(value, Integral) and not isinstance(value, bool)
