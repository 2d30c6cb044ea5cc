"""A TCP proxy the proof suite puts between a process and the broker or the database.

It forwards every connection to one upstream address and can be switched, while
connections are open, between four modes:

- ``pass``: forward as received;
- ``cut``: close both sides of every open connection at once, and every new one too;
- ``stall``: forward nothing and read nothing, keeping every socket open — a black
  hole, as a dead route looks to TCP: no reset, no bytes, which only heartbeats
  detect; bytes sent meanwhile wait in the kernel buffers and flow on ``pass``;
- ``delay``: forward each chunk a fixed time after it was read, in order.

It runs an asyncio loop in a daemon thread, so a test drives it with plain calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    """Forward a local port to ``upstream``; switch modes with :meth:`cut` and friends."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.mode = "pass"
        self.accepted = 0
        self._delay = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    # -- driving it from the test's thread ---------------------------------------------

    def start(self) -> TcpProxy:
        """Listen on a free port and start forwarding."""
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the loop."""
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def open_connections(self) -> int:
        """Return how many client connections are forwarded right now."""
        return len(self._links)

    def pass_(self) -> None:
        """Forward again (heal a cut, a stall or a delay)."""
        self._call(self._set("pass", 0.0))

    def cut(self) -> None:
        """Close both sides of every connection, and of every new one until healed."""
        self._call(self._set("cut", 0.0))

    def stall(self) -> None:
        """Forward nothing and keep every socket open until healed."""
        self._call(self._set("stall", 0.0))

    def delay(self, seconds: float) -> None:
        """Forward every chunk ``seconds`` after it was read."""
        self._call(self._set("delay", seconds))

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the loop's thread --------------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set(self, mode: str, delay: float) -> None:
        self.mode, self._delay = mode, delay
        if mode == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "cut":
            for client, upstream in list(self._links):
                _drop(client)
                _drop(upstream)
            self._links.clear()

    async def _shutdown(self) -> None:
        await self._set("cut", 0.0)
        if self._server is not None:
            self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _accept(self, client_r, client_w) -> None:
        self.accepted += 1
        if self.mode == "cut":
            _drop(client_w)
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _drop(client_w)
            return
        link = (client_w, upstream_w)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        finally:
            self._links.discard(link)
            _drop(client_w)
            _drop(upstream_w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; a reader task and a writer task, so a delay keeps order."""
        chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def read() -> None:
            try:
                while True:
                    await self._flowing.wait()  # stalled: leave the bytes in the kernel
                    data = await reader.read(65536)
                    if not data:
                        break
                    await chunks.put((loop.time() + self._delay, data))
            except (ConnectionError, OSError):
                pass
            await chunks.put(None)

        async def write() -> None:
            try:
                while (item := await chunks.get()) is not None:
                    due, data = item
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    await self._flowing.wait()  # read just before a stall: hold it too
                    if writer.is_closing():
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                _drop(writer)  # one direction ended: end the other, as a reset would

        await asyncio.gather(read(), write())


def _drop(writer: asyncio.StreamWriter) -> None:
    """Close a socket at once, without flushing what is still buffered."""
    with contextlib.suppress(Exception):
        writer.transport.abort()
