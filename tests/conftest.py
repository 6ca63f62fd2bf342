import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT / 'data'

# Keep thread pools small: the suite runs on two cores, and test processes
# started by tests (train.py, torchrun) must not oversubscribe them.
os.environ.setdefault('OMP_NUM_THREADS', '2')


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def python() -> str:
    return sys.executable
