"""Ctrl-C and SIGTERM as a request to stop at the next safe point, not as a crash."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """Whether the work has been asked to stop: by a signal, or by whoever runs it (`also`, such
    as a study asking its worker processes, or the display whose reader went away); `signum` says
    which: the signal `also` returns, or SIGTERM where it returns True."""

    def __init__(self, also: Callable[[], bool] | None = None):
        self.signum: int | None = None
        self._also = also

    @property
    def requested(self) -> bool:
        if self.signum is None and self._also is not None and (asked := self._also()):
            self.signum = signal.SIGTERM if asked is True else int(asked)
        return self.signum is not None


@contextmanager
def interrupts(on_second: Callable[[int], None] = lambda signum: None, also: Callable[[], bool] | None = None):
    """Yield a Stop that the first Ctrl-C or SIGTERM sets; a second one calls on_second(signum)
    and exits at once with 128 + signum. Handlers can only be set in the main thread; in any
    other, only `also` can ask. The previous handlers come back on the way out."""
    stop = Stop(also)

    def handle(signum, frame):
        if stop.signum is not None:
            on_second(signum)
            os._exit(128 + signum)
        stop.signum = signum

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
