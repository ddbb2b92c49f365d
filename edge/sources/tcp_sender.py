"""A stand-in for the scanner's acquisition PC, for tests and demos: a TCP server on
127.0.0.1 that sends line blocks, events and the end frame to one client at a time."""

from __future__ import annotations

import queue
import socket
import threading

from edge.sources.tcp import pack_end, pack_event, pack_lines
from edge.types import BeltEvent, LineBlock

_POLL_S = 0.1  # how soon the threads notice close()


class LineSender:
    """Frames given to ``send_*`` are queued and written, in order, to the connected client
    by a writer thread; they wait while no client is connected. A client that connects while
    another is connected replaces it, as a reconnecting ``TcpLineSource`` would."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._server = socket.create_server((host, port))  # SO_REUSEADDR: restart on a port
        self._server.settimeout(_POLL_S)
        self.port: int = self._server.getsockname()[1]
        self._frames: queue.Queue[bytes | threading.Event] = queue.Queue()
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._write, daemon=True)]
        for thread in self._threads:
            thread.start()

    def send_block(self, block: LineBlock) -> None:
        self.send_raw(pack_lines(block))

    def send_event(self, event: BeltEvent) -> None:
        self.send_raw(pack_event(event))

    def send_end(self) -> None:
        self.send_raw(pack_end())

    def send_raw(self, data: bytes) -> None:
        """Any bytes, framed or not (tests send broken frames this way)."""
        self._frames.put(data)

    def wait_client(self, timeout: float = 10.0) -> bool:
        """Whether a client is connected, waiting up to ``timeout`` seconds for one."""
        return self._connected.wait(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Whether everything queued before this call was written (or lost to a hang-up),
        waiting up to ``timeout`` seconds."""
        reached = threading.Event()
        self._frames.put(reached)
        return reached.wait(timeout)

    def drop(self) -> None:
        """Hang up on the client, as a restarting acquisition PC would; keep listening."""
        with self._lock:
            client, self._client = self._client, None
            self._connected.clear()
        if client is not None:
            _hang_up(client)

    def close(self) -> None:
        """Hang up and stop listening: once this returns, a connect to the port is refused."""
        self._stop.set()
        self.drop()
        for thread in self._threads:
            thread.join(timeout=5)
        # only now: a socket closed while the accept thread polls it would listen on until
        # that poll returns
        self._server.close()

    def __enter__(self) -> LineSender:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if self._stop.is_set():
                _hang_up(client)
                return
            client.settimeout(None)
            with self._lock:
                old, self._client = self._client, client
                self._connected.set()
            if old is not None:
                _hang_up(old)

    def _write(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._frames.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, threading.Event):
                item.set()  # a flush marker: all before it is written
                continue
            client = self._wait_client()
            if client is None:
                return  # closed
            try:
                client.sendall(item)
            except OSError:
                pass  # a frame cut by a hang-up is lost, as on a real link

    def _wait_client(self) -> socket.socket | None:
        """The connected client, waiting for one; None once closed."""
        while not self._stop.is_set():
            if self._connected.wait(_POLL_S):
                with self._lock:
                    if self._client is not None:
                        return self._client
        return None


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
    sock.close()
