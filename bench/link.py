"""An emulated network link in front of the local S3 server: a bandwidth both ways shared by every
connection (one uplink, as from one machine to Spaces) and a round-trip time.

The local server answers over loopback at ~140 MB/s with no latency, which no upload to Spaces
sees; `--link-mbit 100 --link-rtt-ms 20` asks what the project costs over a link like a real one.
Each direction holds every chunk for half the round trip, then lets it through the shared
bandwidth budget in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Link:
    """The emulated link: megabits a second each way, and the round-trip time."""

    mbit_per_second: float
    rtt_ms: float

    @property
    def bytes_per_second(self) -> float:
        """The bandwidth in bytes a second."""
        return self.mbit_per_second * 1_000_000 / 8

    def describe(self) -> str:
        """`100 Mbit/s each way, 20 ms round trip`."""
        return f"{self.mbit_per_second:g} Mbit/s each way, {self.rtt_ms:g} ms round trip"

    def label(self) -> str:
        """`100mbit-20ms`, for file names."""
        return f"{self.mbit_per_second:g}mbit-{self.rtt_ms:g}ms"


class _Bandwidth:
    """A token bucket: at most `rate` bytes a second through it, in the order asked."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._lock = asyncio.Lock()
        self._free_at = 0.0

    async def take(self, size: int) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self._free_at)
            self._free_at = start + size / self._rate
        await asyncio.sleep(max(0.0, self._free_at - asyncio.get_running_loop().time()))


class LinkProxy:
    """Forwards 127.0.0.1:<port> to `target` through the emulated link, from a daemon thread."""

    def __init__(self, target_host: str, target_port: int, link: Link) -> None:
        self._target = (target_host, target_port)
        self._link = link
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        # Bytes delivered to clients so far (HTTP headers included): what a browser fetched.
        self.bytes_to_clients = 0

    def start(self) -> LinkProxy:
        """Listen on a free port (in `port` on return) and forward until the process exits."""
        threading.Thread(target=self._serve, name="link-proxy", daemon=True).start()
        self._ready.wait(timeout=10)
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        up, down = (_Bandwidth(self._link.bytes_per_second) for _ in range(2))
        server = self._loop.run_until_complete(
            asyncio.start_server(
                lambda reader, writer: self._connection(reader, writer, up, down), "127.0.0.1", 0
            )
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _connection(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        up: _Bandwidth,
        down: _Bandwidth,
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        delay = self._link.rtt_ms / 2000
        await asyncio.gather(
            _carry(client_reader, server_writer, delay, up),
            _carry(server_reader, client_writer, delay, down, self._delivered),
        )

    def _delivered(self, size: int) -> None:
        self.bytes_to_clients += size


async def _carry(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    bandwidth: _Bandwidth,
    on_delivered: Callable[[int], None] | None = None,
) -> None:
    """Copy one direction, each chunk held `delay` seconds and paced by `bandwidth`."""
    loop = asyncio.get_running_loop()
    in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK_BYTES):
                await in_flight.put((loop.time() + delay, data))
        await in_flight.put((loop.time() + delay, b""))

    receiving = asyncio.create_task(receive())
    try:
        while True:
            due, data = await in_flight.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                break
            await bandwidth.take(len(data))
            writer.write(data)
            await writer.drain()
            if on_delivered is not None:
                on_delivered(len(data))
    except ConnectionError:
        pass
    finally:
        receiving.cancel()
        with contextlib.suppress(Exception):
            writer.close()
