"""SIGTERM handled like Ctrl-C: what CI cancellation, job timeouts and `docker stop` send.

Python's default for SIGTERM ends the process at once, so pytest writes no JUnit and we write no report.
Raising KeyboardInterrupt instead makes pytest stop, finish the session (reports marked interrupted) and
exit with status 2.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def handle_sigterm_as_interrupt() -> Callable[[], None]:
    """Install the handler where nobody else has one; returns what restores the previous handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, _interrupt)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return restore
