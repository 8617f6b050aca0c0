"""The errors a user can act on, as classes, and the one place they become exit statuses.

Each carries one plain sentence (or a list of them) that names the problem and how to fix it;
the command line prints it on stderr, without a traceback, and exits with `exit_code(error)`.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager


class BarkError(Exception):
    """Bad input: a config, a command line, a prompt or a directory the user can fix."""

    # On the RunFailed or Interrupted that barkbench.compare raises: the Study as far as it got,
    # its results.json and report written, for a notebook to read all the same.
    study = None


class RunFailed(BarkError):
    """A failure while running: a loss that turned non-finite, a damaged checkpoint."""


class Damaged(BarkError):
    """A file of a run or study directory that cannot be read (torn, truncated, garbled). The
    message names the file and what mends it; `problem` says what is wrong in a few words."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


class Interrupted(BarkError):
    """Ctrl-C or SIGTERM stopped the work after a checkpoint; it can be resumed."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


def exit_code(error: BarkError) -> int:
    """2 for bad input, 1 for a failure while running, 128 + the signal for an interrupt (130, 143)."""
    if isinstance(error, Interrupted):
        return 128 + int(error.signum)
    return 1 if isinstance(error, RunFailed) else 2


@contextmanager
def resumable(what: str, command: str):
    """Inside it, an OSError (a full disk, a file taken away: the machine's, not the user's) is
    marked with the command that goes on with the work where it stopped, as `error.resume`
    ("resume the run with: barkbench train --resume RUN"), for the command line to say: running
    `train --config` or `compare --config` again would start a new run or study instead."""
    try:
        yield
    except OSError as error:
        error.resume = f"resume the {what} with: {command}"
        raise
