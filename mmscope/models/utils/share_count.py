"""Whole counts of a share of items, free of binary rounding errors.

A share such as 0.55 or 5/6 has no exact binary float: ``0.55 * 400`` gives
220.00000000000003, and its ceiling 221 rather than 220; ``(5 / 6) * 6``
gives 5.000000000000001. These helpers multiply the fraction the share
represents instead, so ``0.55`` counts as exactly 11/20 and ``5 / 6`` as 5/6.
"""
import math
from decimal import Decimal
from fractions import Fraction
from numbers import Rational
from typing import Union

# A float that prints with more significant digits than a typed decimal
# (Python floats print 0.8333333333333334 for 5 / 6) is taken as the nearest
# fraction with a denominator up to MAX_DENOMINATOR, if one lies within
# RELATIVE_TOLERANCE of it.
MAX_TYPED_DIGITS = 15
MAX_DENOMINATOR = 10**6
RELATIVE_TOLERANCE = Fraction(1, 10**12)

Share = Union[float, Rational]


def _exact(share: Share) -> Fraction:
    """Return the fraction that ``share`` represents.

    Args:
        share: A Python or NumPy float, an int or a fraction.

    Returns:
        ``share`` itself for ints and fractions. For a float, the decimal it
        prints as when that has at most ``MAX_TYPED_DIGITS`` significant
        digits. Otherwise the nearest fraction with a denominator up to
        ``MAX_DENOMINATOR`` when it lies within ``RELATIVE_TOLERANCE``, and
        else the printed decimal.
    """
    if isinstance(share, Rational):
        return Fraction(share)

    text = str(share)
    decimal = Fraction(text)
    if len(Decimal(text).as_tuple().digits) <= MAX_TYPED_DIGITS:
        return decimal
    simple = decimal.limit_denominator(MAX_DENOMINATOR)
    if abs(simple - decimal) <= RELATIVE_TOLERANCE * abs(decimal):
        return simple
    return decimal


def ceil_share(share: Share, total: int) -> int:
    """Return ``ceil(share * total)`` computed on the share's fraction.

    Args:
        share: A share, usually in [0, 1].
        total: Number of items.

    Returns:
        The smallest whole number of items that is at least the share.
    """
    return math.ceil(_exact(share) * total)


def round_share(share: Share, total: int) -> int:
    """Return ``share * total`` rounded to the nearest whole number.

    Halves round up, computed on the share's fraction: 0.58 of 25 items is
    14.5 and gives 15, and 1/6 of 3 items is 0.5 and gives 1.

    Args:
        share: A share, usually in [0, 1].
        total: Number of items.

    Returns:
        The nearest whole number of items.
    """
    return math.floor(_exact(share) * total + Fraction(1, 2))
