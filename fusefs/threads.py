"""Running blocking store calls off the trio event loop.

``run`` is ``trio.to_thread.run_sync`` without two costs that showed up as
10% of the daemon's busy samples: naming the OS thread on every call (two
``pthread_setname_np`` calls through ctypes and a string format) and the
capacity limiter (pyfuse3's ``max_tasks`` already bounds how many handlers
run at once). Threads come from trio's own thread cache; like
``to_thread.run_sync``, the waiting task cannot be cancelled mid-call.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import trio

T = TypeVar("T")


async def run(fn: Callable[..., T], *args, **kwargs) -> T:
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()

    def deliver(result) -> None:
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    trio.lowlevel.start_thread_soon(functools.partial(fn, *args, **kwargs), deliver)
    return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
