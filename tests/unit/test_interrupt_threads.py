"""A timeout interrupts the code's main thread even when the code started threads."""

from __future__ import annotations

import pytest
from local_backend import LocalBackend

from e2b_tools import Sandbox, SandboxTimeoutError

# Threads that do not block SIGINT, as NumPy's BLAS pool or any `threading` user has.
# Sent to the process, the interrupt could land on one of them and leave the main
# thread asleep until the grace ran out and the context was restarted (4 of 10 here).
_THREADS = """
import threading, time
def idle():
    while True:
        time.sleep(0.001)
for _ in range(8):
    threading.Thread(target=idle, daemon=True).start()
marker = "kept"
"""


def test_timeouts_keep_state_with_threads_running(backend: LocalBackend) -> None:
    with Sandbox.create(backend=backend, timeout=300) as sbx:
        sbx.run_code(_THREADS)
        kept = []
        for _ in range(6):
            with pytest.raises(SandboxTimeoutError) as info:
                sbx.run_code("import time\ntime.sleep(30)", timeout=0.5)
            kept.append(info.value.state_kept)
        assert kept == [True] * 6
        assert sbx.run_code("marker").text == "kept"
