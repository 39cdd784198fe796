"""Threads for the parts of a multipart upload that never keep a stopped process alive.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, so a run
stopped by SIGTERM while a part was on the wire stayed alive until that request ended (up to
botocore's 60 s read timeout): `upload-jobs serve` then waited out its runner's grace period
before the run could be marked. These threads are daemons: a stopped run exits at once, and the
upload it leaves open is resumed by the job's next attempt.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = None


class DaemonPool:
    """`workers` daemon threads running what is submitted, in order; futures as results."""

    def __init__(self, workers: int, name: str) -> None:
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Run `work` on a free thread; its future."""
        future: Future[T] = Future()
        self._work.put((future, work))
        return future

    def shutdown(self, wait: bool, cancel: bool) -> None:
        """Stop the threads once their current work is done (waiting for that with `wait`);
        with `cancel`, work not started yet never starts."""
        if cancel:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self._threads:
            self._work.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()

    def _serve(self) -> None:
        while (item := self._work.get()) is not _STOP:
            future, work = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
