"""Checks of the loss weights that the MambaScope models take."""
import math
from numbers import Real


def checked_loss_weight(value: float, name: str) -> float:
    """Return ``value`` as a float after checking it is a usable loss weight.

    Args:
        value: The weight, a finite number of at least 0.
        name: Name of the setting, used in the error message.

    Returns:
        The weight as a float.

    Raises:
        ValueError: If ``value`` is not a number, is negative, or is not
            finite. A negative weight would train the model to increase
            that loss.
    """
    valid = (isinstance(value, Real) and not isinstance(value, bool)
             and math.isfinite(value) and value >= 0)
    if not valid:
        raise ValueError(
            f'{name} must be a finite number of at least 0, got {value!r}. '
            'Use 0 to switch the loss off.')
    return float(value)
