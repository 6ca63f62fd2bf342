"""Temporary log level of MMEngine's current logger."""
from contextlib import contextmanager
from typing import Iterator, Union

from mmengine.logging import MMLogger


@contextmanager
def current_logger_level(level: Union[int, str]) -> Iterator[None]:
    """Set the level of the current MMLogger until the block ends.

    Args:
        level: A ``logging`` level, such as ``logging.ERROR`` or
            ``'WARNING'``. Records below it are dropped.
    """
    logger = MMLogger.get_current_instance()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
