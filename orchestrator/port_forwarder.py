"""The lab's own port forwarder: a task port published on the host for a task in a Pod sandbox.

Docker publishes a port (``-p``) only when it creates a container's network endpoint, and a
warm pool's sandbox (``orchestrator.sandbox_pool``) got its endpoint before anyone knew which
ports its task would use; the containers that join it later cannot publish anything. So the
lab publishes them itself, as docker-proxy (Docker's own userland proxy) does: one TCP listener
per port mapping on the publish address (127.0.0.1 by default), each connection piped to the
sandbox's IP and the container port. Measured on a 2-core machine: joining a ready sandbox
makes create + start of a container 0.11 s instead of 0.37 s, and opening a listener costs
well under a millisecond.

The listeners live on one asyncio loop, on a thread of its own, in the process whose agent
started the task (the leader). Another leader after a restart opens them again from the task's
``networkBindings`` (the same host ports when they are free). Only TCP: a task with a UDP port
mapping starts without a sandbox, and Docker publishes it.
"""
import asyncio
import logging
import socket
import threading

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class PortForwarder:
    """TCP listeners, each piping its connections to one (address, port)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop = None
        self._servers = {}  # key -> (asyncio server, host port, target (ip, port))

    def _ensure_loop(self):
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="port-forwarder", daemon=True).start()
            return self._loop

    def _run(self, coroutine, timeout=10):
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop()).result(timeout)

    def open(self, key, listen, target, port=0):
        """Forward ``listen``:``port`` (0: any free port) to ``target`` (ip, port) under ``key``;
        returns the host port. The listener of ``key`` is kept if it already forwards there."""
        with self._lock:
            known = self._servers.get(key)
        if known is not None and known[2] == tuple(target):
            return known[1]
        if known is not None:
            self.close(key)
        try:
            server = self._run(self._listen(listen, port, tuple(target)))
        except OSError:
            if not port:
                raise
            # The port the task had is taken now (another process's): any free one will do.
            server = self._run(self._listen(listen, 0, tuple(target)))
        host_port = server.sockets[0].getsockname()[1]
        with self._lock:
            self._servers[key] = (server, host_port, tuple(target))
        return host_port

    def port_of(self, key):
        """The host port ``key`` listens on, or None."""
        with self._lock:
            known = self._servers.get(key)
        return known[1] if known else None

    def close(self, key):
        """Stop listening for ``key`` (open connections end with their peers)."""
        with self._lock:
            known = self._servers.pop(key, None)
        if known is not None:
            self._loop.call_soon_threadsafe(known[0].close)

    def close_prefix(self, prefix):
        """Stop every listener whose key starts with ``prefix`` (a task's)."""
        with self._lock:
            keys = [k for k in self._servers if k.startswith(prefix)]
        for key in keys:
            self.close(key)

    def keys(self):
        with self._lock:
            return set(self._servers)

    async def _listen(self, listen, port, target):
        async def serve(reader, writer):
            await self._pipe(reader, writer, target)

        return await asyncio.start_server(serve, listen, port, reuse_address=True, family=socket.AF_INET)

    async def _pipe(self, reader, writer, target):
        """Join one accepted connection to the target; each direction half-closes on its own."""
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError as exc:  # the task is not listening (yet): the client sees a closed connection
            log.debug("forward to %s:%s refused: %s", target[0], target[1], exc)
            writer.close()
            return
        try:
            await asyncio.gather(_copy(reader, upstream_writer), _copy(upstream_reader, writer))
        finally:
            upstream_writer.close()
            writer.close()


async def _copy(reader, writer):
    """Copy until end of file, then half-close the other side (its answer may still come)."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


_forwarder = PortForwarder()  # its loop's thread starts with the first listener


def forwarder():
    """The process's one forwarder."""
    return _forwarder
