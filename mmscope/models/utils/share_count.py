"""Whole counts of a share of items, free of binary rounding errors.

A share such as 0.55 has no exact binary float: ``0.55 * 400`` gives
220.00000000000003, and its ceiling 221 rather than 220. These helpers
multiply the decimal value the float prints as (its shortest repr), so
``0.55`` counts as exactly 55/100.
"""
import math
from fractions import Fraction


def _exact(share: float) -> Fraction:
    """Return the decimal value of ``share`` as an exact fraction."""
    return Fraction(str(float(share)))


def ceil_share(share: float, total: int) -> int:
    """Return ``ceil(share * total)`` computed on the decimal share.

    Args:
        share: A share, usually in [0, 1].
        total: Number of items.

    Returns:
        The smallest whole number of items that is at least the share.
    """
    return math.ceil(_exact(share) * total)


def round_share(share: float, total: int) -> int:
    """Return ``share * total`` rounded to the nearest whole number.

    Halves round up, computed on the decimal share: 0.58 of 25 items is
    14.5 and gives 15.

    Args:
        share: A share, usually in [0, 1].
        total: Number of items.

    Returns:
        The nearest whole number of items.
    """
    return math.floor(_exact(share) * total + Fraction(1, 2))
