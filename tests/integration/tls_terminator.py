"""A TLS terminator on loopback, in front of a server that speaks plaintext only.

Tansu (the embedded broker) has no TLS of its own, so the Kafka TLS test puts this in
front of it, as a TLS load balancer or stunnel would stand in front of a broker: the
clients' TLS (certificate verification, hostname check, client certificate) is real
OpenSSL, and the broker advertises the terminator's port so that every connection,
bootstrap and after, goes through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

from currents.embedded import free_port


class TlsTerminator:
    def __init__(self, cert: Path, key: Path, client_ca: Path, upstream_port: int) -> None:
        """Requires a client certificate signed by ``client_ca`` (mutual TLS)."""
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
        self.context.load_cert_chain(cert, key)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.upstream_port = upstream_port
        self.port = free_port()
        self.clients: list[str] = []  # subject CN of each client certificate presented
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tls-terminator", daemon=True)

    def __enter__(self) -> TlsTerminator:
        self._thread.start()
        if not self._started.wait(5):
            raise RuntimeError("the TLS terminator did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self.context)
        )
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        self.clients.append(dict(item[0] for item in peer.get("subject", ())).get("commonName", ""))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
