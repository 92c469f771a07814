"""Named points where a test can make this process die as a crash would, mid-step.

`APP_FAILPOINTS=queue.turn_given` (names separated by commas) makes the process
SIGKILL itself when it reaches a listed point: the real thing, with no cleanup,
no `finally` and no answer to the client, which a simulated crash in the test's
own process cannot be. Read once at start-up; unset (always, outside tests) a
point costs one set lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "APP_FAILPOINTS"
_ARMED = frozenset(name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip())


def reach(name: str) -> None:
    """Die here, now, if the test armed this point."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
