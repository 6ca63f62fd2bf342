"""Running the command-line tools inside the test process."""
import contextlib
import io
import os
import runpy
import sys
from unittest import mock

import pytest

from tests.reduced import REPO_ROOT


def tool_error(tool: str, *args: str) -> str:
    """Run a tool in this process and return its exit message and stderr.

    The tool must end with ``SystemExit`` and a non-zero status. Any other
    exception fails the test, as a traceback in a subprocess's stderr would.
    Starting no new Python process saves the seconds of importing PyTorch
    and OpenMMLab per call.

    Args:
        tool: Path of the tool's script, relative to the repository root,
            which is the working folder while it runs.
        *args: The tool's command-line arguments.

    Returns:
        What the tool wrote to stderr, followed by its exit message.
    """
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, \
            contextlib.chdir(REPO_ROOT), \
            contextlib.redirect_stderr(stderr), \
            mock.patch.object(sys, 'argv', [tool, *args]), \
            mock.patch.dict(os.environ, {'LOCAL_RANK': '0'}):
        runpy.run_path(str(REPO_ROOT / tool), run_name='__main__')

    code = exit_info.value.code
    assert code not in (0, None)
    return stderr.getvalue() + ('' if isinstance(code, int) else str(code))
