"""Whole counts of shares: mmscope.models.utils.share_count."""
from fractions import Fraction

import numpy as np
import pytest

from mmscope.models.utils import ceil_share, round_share


@pytest.mark.parametrize('share, total, count', [
    (0.55, 400, 220),            # 0.55 * 400 = 220.00000000000003
    (5 / 6, 6, 5),               # 5.000000000000001
    (5 / 6, 600, 500),
    (7 / 9, 9, 7),
    (5 / 6, 160000, 133334),     # 133333.33... rounds up
    (0.3, 10, 3),
    (0.1 + 0.2, 10, 3),          # 0.30000000000000004 is read as 3/10
    (1e-7, 400, 1),              # a tiny share still needs one item
    (0.1234567, 10**7, 1234567),
    (np.float32(0.55), 400, 220),
    (np.float64(5 / 6), 6, 5),
    (Fraction(2, 3), 3, 2),
    (1, 7, 7),
    (0.0, 7, 0),
])
def test_ceil_share(share, total, count):
    assert ceil_share(share, total) == count


@pytest.mark.parametrize('share, total, count', [
    (0.58, 25, 15),              # 14.5 as a decimal, 14.499999999999998
    (1 / 6, 3, 1),               # 0.5 rounds up
    (1 / 6, 2, 0),
    (0.5, 3, 2),
    (0.5, 4, 2),
    (2 / 3, 3, 2),
])
def test_round_share(share, total, count):
    assert round_share(share, total) == count
