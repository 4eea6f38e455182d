"""`hyperalign ARGS` run inside the test's own process, reported as a finished subprocess would be.

A new process pays seconds of imports (PyTorch, sentence-transformers, SQLAlchemy) before the
command starts; the command tests ran some forty of them. In-process, `main(argv)` runs with its own
standard streams, standard input and environment variables, all put back afterwards, which is what a
process boundary gave the tests. The entry points themselves (the console script, `python -m
assistant`, `python -m assistant.cli`) keep their subprocess tests in tests/integration/test_cli.py.

argparse exits on a malformed command line (SystemExit): that is not caught here, so a test that
means it says `pytest.raises(SystemExit)`.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass

from assistant.cli import main


@dataclass(frozen=True)
class Finished:
    """The fields of `subprocess.run(..., capture_output=True, text=True)` the tests read."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def hyperalign(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Finished:
    """Run one command with `stdin` as its (non-terminal) standard input and `env` added to the environment."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), standard_input(stdin), environment(env or {}):
        code = main(list(args))
    return Finished(args, code, out.getvalue(), err.getvalue())


@contextmanager
def standard_input(text: str) -> Iterator[None]:
    """A pipe's worth of input: readable, and not a terminal, so commands never prompt."""
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """`extra` on top of the current environment, and afterwards the environment exactly as it was
    (also undoing what the command itself set, as its process ending would have)."""
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)
