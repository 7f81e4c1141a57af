"""The end-to-end tests run against the local stack: started here unless one is running already (then it is
left running), stopped here by PID when this session started it."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import stack  # noqa: E402


@pytest.fixture(scope="session")
def local_stack():
    started_here = not stack.running("moto")
    stack.start()
    try:
        yield stack.clients()
    finally:
        if started_here:
            stack.stop()
