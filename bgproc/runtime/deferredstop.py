"""Beat's stop signals, held until a tick ends: a fire is either sent or not.

Apart from :mod:`bgproc.runtime.entryscheduler` because it is about the process, not the
schedule: which signals stop beat, and when they may act.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """SIGTERM and SIGINT that arrive inside the block act when it ends; a second one at once.

    Celery's beat answers them by closing the scheduler (RedBeat releases its lock) and
    raising SystemExit wherever the main thread is. Mid-tick, that cuts a publish in two
    and the tick goes on without its lock, ending in a traceback. Deferred, beat stops
    between ticks, where every fire is either sent or not. A second signal is the way
    out of a tick that hangs (an unreachable broker).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    pending: list[int] = []

    def defer(signum: int, _frame: object) -> None:
        if not pending:
            pending.append(signum)
            return
        pending.clear()  # the second one: act now
        _restore(originals)
        signal.raise_signal(signum)

    originals = {number: signal.signal(number, defer) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        _restore(originals)
        if pending:
            signal.raise_signal(pending.pop())


def _restore(handlers: dict[int, Any]) -> None:
    for number, handler in handlers.items():
        signal.signal(number, signal.SIG_DFL if handler is None else handler)
