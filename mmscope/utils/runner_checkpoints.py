"""Loading of MMEngine runner checkpoints under PyTorch 2.6 and newer."""
import os
from contextlib import contextmanager
from typing import Iterator

from mmengine.logging import print_log

from .checkpoint_file import FORCE_FULL_LOAD_ENV_VAR


def allow_runner_checkpoints() -> None:
    """Let MMEngine load the checkpoints that its own runner writes.

    PyTorch 2.6 made ``torch.load`` default to ``weights_only=True``.
    MMEngine 0.10 calls ``torch.load`` without that argument, and its runner
    checkpoints pickle ``HistoryBuffer`` objects with bound methods, which the
    weights-only unpickler rejects, so ``--resume``, ``load_from`` and
    ``tools/test.py`` would fail. Setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
    restores the full unpickler for calls that do not pass ``weights_only``.
    mmscope's own loading of pretrained weights (``init_cfg``) reads weights
    only first, and uses the full unpickler only for a file that needs it
    while this variable is set. Only load checkpoints from a trusted source.

    A value the user already set is kept.
    """
    if FORCE_FULL_LOAD_ENV_VAR in os.environ:
        return
    os.environ[FORCE_FULL_LOAD_ENV_VAR] = '1'
    print_log(
        f'Set {FORCE_FULL_LOAD_ENV_VAR}=1 so that MMEngine can load runner '
        'checkpoints; load only checkpoints from a trusted source.',
        logger='current')


@contextmanager
def runner_checkpoints_allowed() -> Iterator[None]:
    """Allow the full unpickler inside the block only.

    It sets the variable as :func:`allow_runner_checkpoints` does, for
    library calls, which must not change how the rest of the process loads
    files. A value the user already set is kept, and an unset variable is
    removed again when the block ends.
    """
    if FORCE_FULL_LOAD_ENV_VAR in os.environ:
        yield
        return
    os.environ[FORCE_FULL_LOAD_ENV_VAR] = '1'
    try:
        yield
    finally:
        os.environ.pop(FORCE_FULL_LOAD_ENV_VAR, None)
