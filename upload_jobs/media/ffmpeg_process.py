"""Running one ffmpeg process: progress from `-progress`, a hard timeout, a readable error."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from typing import IO

from upload_jobs.errors import OptimizationFailed

_STDERR_TAIL_LINES = 12
_STDERR_TAIL_CHARS = 1500


class RemuxFailed(OptimizationFailed):
    """ffmpeg could not start, exited with an error, was killed or ran out of time."""

    fallback_kind = "ffmpeg_failed"


class _Watchdog:
    """Kills ffmpeg's process group once `timeout_seconds` pass, or on demand."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_seconds: float) -> None:
        self._proc = proc
        self._lock = threading.Lock()
        self.timed_out = False
        self._timer = threading.Timer(timeout_seconds, self.kill, kwargs={"timed_out": True})
        self._timer.daemon = True
        self._timer.start()

    def kill(self, *, timed_out: bool = False) -> None:
        with self._lock:
            if self._proc.poll() is not None:
                return
            self.timed_out = timed_out
            # ffmpeg runs in its own session, so the group also takes any wrapper's children,
            # which would otherwise hold stdout open and keep us waiting.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._timer.cancel()
        self._timer.join()


class _ProgressReporter:
    """Turns `-progress` key=value lines into increasing percentages (whole-percent steps)."""

    def __init__(
        self, duration_seconds: float | None, callback: Callable[[float], None] | None
    ) -> None:
        self._duration_us = (duration_seconds or 0) * 1_000_000
        self._callback = callback
        self._last = -1.0

    def feed(self, line: str) -> None:
        key, _, value = line.partition("=")
        if key == "progress" and value == "end":
            self._emit(100.0)
        # out_time_ms is microseconds too (a historical misnomer kept by ffmpeg).
        elif key in ("out_time_us", "out_time_ms") and self._duration_us > 0:
            try:
                micros = int(value)
            except ValueError:  # "N/A" before the first packet
                return
            # Hold 100 back for progress=end: out_time can reach the duration before the
            # faststart pass has rewritten the file.
            percent = min(99.0, max(0.0, micros / self._duration_us * 100))
            if percent >= self._last + 1:
                self._emit(round(percent, 1))

    def _emit(self, percent: float) -> None:
        if self._callback is not None and percent > self._last:
            self._last = percent
            self._callback(percent)


def run_ffmpeg(
    args: list[str],
    timeout_seconds: float,
    duration_seconds: float | None,
    on_progress: Callable[[float], None] | None,
) -> None:
    """Run ffmpeg with `args`, reporting `-progress` percentages; RemuxFailed on any failure."""
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise RemuxFailed(f"could not start ffmpeg ({args[0]}): {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    drain = threading.Thread(target=_drain, args=(proc.stderr, stderr_tail), daemon=True)
    drain.start()
    watchdog = _Watchdog(proc, timeout_seconds)
    progress = _ProgressReporter(duration_seconds, on_progress)
    try:
        for raw in proc.stdout:
            progress.feed(raw.decode("utf-8", "replace").strip())
        returncode = proc.wait()
    except BaseException:
        watchdog.kill()
        proc.wait()
        raise
    finally:
        watchdog.stop()
        drain.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()

    tail = ":\n" + "\n".join(stderr_tail)[-_STDERR_TAIL_CHARS:] if stderr_tail else ""
    if watchdog.timed_out:
        raise RemuxFailed(f"ffmpeg did not finish within {timeout_seconds:g} s and was stopped")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        raise RemuxFailed(f"ffmpeg was killed by {name}{tail}")
    if returncode != 0:
        raise RemuxFailed(f"ffmpeg failed with exit status {returncode}{tail}")


def _drain(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            tail.append(line)
