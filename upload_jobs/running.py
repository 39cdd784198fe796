"""`with` for anything that starts and stops (a local S3 server, a proxy, a test cluster)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartedInWith:
    """`with thing:` calls `thing.start()` on entry (its value is what `start` returns) and
    `thing.stop()` on exit, whatever ended the block."""

    def start(self) -> Self:
        """Start it; return it."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it (safe to call twice)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
