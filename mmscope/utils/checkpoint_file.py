"""Checks that a file is a PyTorch checkpoint, with clear messages."""
import errno
import os
from contextlib import contextmanager
from typing import Iterator

# ``torch.save`` writes a zip archive. Files of PyTorch before 1.6 start
# with a pickle of protocol 2 or higher.
ZIP_MAGIC = b'PK\x03\x04'
PICKLE_MAGIC = b'\x80'

# Values of TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD that PyTorch reads as set.
TRUE_VALUES = ('1', 'y', 'yes', 'true')
FORCE_FULL_LOAD_ENV_VAR = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'

WHICH_FILES = ('Give a .pth file written by tools/train.py or '
               'tools/convert_vim_checkpoint.py, or an official Vim '
               'checkpoint.')


def full_load_allowed() -> bool:
    """Return whether the user allowed PyTorch's full unpickler.

    ``tools/train.py``, ``tools/test.py`` and
    :func:`mmscope.utils.allow_runner_checkpoints` allow it by setting
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.
    """
    value = os.environ.get(FORCE_FULL_LOAD_ENV_VAR, '')
    return value.strip().lower() in TRUE_VALUES


def check_file_exists(path: str, name: str) -> None:
    """Raise unless ``path`` is an existing file.

    Args:
        path: Local path to check.
        name: What the path is, such as an argument name, for the message.

    Raises:
        FileNotFoundError: If ``path`` is a folder or does not exist.
    """
    if os.path.isdir(path):
        raise FileNotFoundError(f'{name} {path} is a folder; give the path of '
                                'a file in it.')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{name}: file not found: {path}')


def check_local_checkpoint(path: str, name: str = 'checkpoint') -> None:
    """Raise unless ``path`` is a file that starts like a PyTorch checkpoint.

    Only the first bytes are read, so a wrong file is reported before a
    model is built.

    Args:
        path: Local path to check.
        name: What the path is, such as an argument name, for the message.

    Raises:
        FileNotFoundError: If ``path`` is a folder or does not exist.
        ValueError: If the file is not a PyTorch checkpoint.
    """
    check_file_exists(path, name)
    check_checkpoint_file(path)


def check_checkpoint_file(path: str) -> None:
    """Raise unless ``path`` starts like a file that ``torch.save`` writes.

    Args:
        path: Local path of an existing file.

    Raises:
        ValueError: If the file is empty or starts with other bytes.
    """
    with open(path, 'rb') as file:
        head = file.read(len(ZIP_MAGIC))
    if head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        return
    reason = 'it is empty' if not head else (
        'it does not start like a file that torch.save writes')
    raise ValueError(
        f'{path} is not a PyTorch checkpoint file: {reason}. {WHICH_FILES}')


def _is_damaged_archive_error(error: Exception) -> bool:
    """Return whether ``torch.load`` failed on a damaged zip archive.

    PyTorch reports a damaged archive through its stream reader. An archive
    cut short can also make it seek before the start of the file, which the
    system rejects as an invalid argument.
    """
    if isinstance(error, OSError):
        return error.errno == errno.EINVAL
    return 'PytorchStreamReader' in str(error)


@contextmanager
def damaged_file_errors(path: str) -> Iterator[None]:
    """Turn the errors of a truncated or damaged checkpoint into ValueError.

    Args:
        path: The file being loaded inside the context.

    Raises:
        ValueError: If loading fails because the file ends early or its zip
            archive is damaged or cut short.
    """
    try:
        yield
    except EOFError as error:
        raise ValueError(
            f'{path} ends early: it is truncated or damaged ({error}). Copy '
            'or download it again.') from error
    except (RuntimeError, OSError) as error:
        if not _is_damaged_archive_error(error):
            raise
        raise ValueError(
            f'{path} is a damaged or truncated checkpoint ({error}). Copy or '
            'download it again.') from error
