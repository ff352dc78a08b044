"""The engine over TLS: a real Redis with TLS, client certificates and an ACL user, and the
broker behind TLS with client certificates, configured as docker-compose.tls.yml does.

- Certificates and passwords come from examples/tls/make-certs.sh, the script the
  compose override's instructions run.
- Redis is Debian's redis-server started with the override's own `command:` (its
  /certs paths mapped to the generated files, its port to a free one).
- The engine's environment is the override's `worker` environment, with hosts mapped to
  loopback. One difference: the override uses SASL_SSL, which Tansu cannot serve (it has
  neither TLS nor SASL users it can be given, currents/embedded.py), so Kafka runs as SSL
  through a TLS terminator in front of Tansu (tests/integration/tls_terminator.py), and
  without the idempotent producer (Tansu has no InitProducerId).
  SASL's arguments are checked client by client in tests/unit/test_server_security.py.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import yaml

from benchmarks.harness import counter, load_definitions, redis_client
from currents.embedded import ServerProcess, die_with_parent, free_port, spawn_server, start_broker
from schemas.examples import example_event
from tests.compose_files import BASE, TLS, host_path, project
from tests.integration.conftest import REPO, Engine, Servers, poll, start_engine, stop_engine
from tests.integration.tls_terminator import TlsTerminator


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the project directory: ./certs made by the compose instructions."""
    root = tmp_path_factory.mktemp("tls-project")
    made = subprocess.run(
        ["bash", str(REPO / "examples/tls/make-certs.sh"), str(root / "certs")],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.fail(f"examples/tls/make-certs.sh failed:\n{made.stderr}", pytrace=False)
    return root


@pytest.fixture(scope="module")
def passwords(project_dir: Path) -> dict[str, str]:
    lines = (project_dir / "certs/passwords.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture(scope="module")
def compose(passwords: dict[str, str]) -> dict[str, Any]:
    return project(BASE, TLS, variables={"CURRENTS_API_KEYS": "", **passwords})


def tls_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server with TLS is needed (Debian's package redis-server; `make tools` "
            "installs it)",
            pytrace=False,
        )
    return binary


def mapped(argv: list[str], service: dict[str, Any], root: Path) -> list[str]:
    """``argv`` with every container path under a bind mount replaced by the host path."""
    out = []
    for word in argv:
        host = host_path(word, service, root) if word.startswith("/") else None
        out.append(str(host) if host is not None else word)
    return out


@pytest.fixture(scope="module")
def tls_redis(
    compose: dict[str, Any], project_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    service = compose["services"]["redis"]
    argv = mapped(service["command"], service, project_dir)
    assert argv[0] == "redis-server"
    port = free_port()
    argv[argv.index("--tls-port") + 1] = str(port)
    data = tmp_path_factory.mktemp("tls-redis")
    argv = [tls_redis_server(), *argv[1:], "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
    server = spawn_server("redis-tls", argv, port, f"127.0.0.1:{port}", data)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kafka_over_tls(
    project_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsTerminator]:
    certs = project_dir / "certs"
    upstream = free_port()
    with TlsTerminator(
        certs / "kafka/kafka.crt", certs / "kafka/kafka.key", certs / "ca/ca.crt", upstream
    ) as terminator:
        broker = start_broker(
            tmp_path_factory.mktemp("tls-broker"), upstream, advertised_port=terminator.port
        )
        yield terminator
        broker.stop()


def engine_env(compose: dict[str, Any], project_dir: Path, redis_port: int) -> dict[str, str]:
    """The override's worker environment on this machine."""
    service = compose["services"]["worker"]
    env = {}
    for key, value in service["environment"].items():
        text = str(value)
        if key.endswith("_FILE"):
            text = str(host_path(text, service, project_dir))
        env[key] = text.replace("@redis:6379/", f"@127.0.0.1:{redis_port}/")
    assert env["CURRENTS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for key in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"):
        env.pop(f"CURRENTS_KAFKA_{key}")
    del env["CURRENTS_API_KEYS"]  # the operator's; start_engine makes the test's own
    certs = project_dir / "certs/currents"
    return env | {
        "CURRENTS_PRODUCER_IDEMPOTENCE": "false",  # Tansu has no InitProducerId
        "CURRENTS_KAFKA_SECURITY_PROTOCOL": "SSL",
        "CURRENTS_KAFKA_TLS_CERT_FILE": str(certs / "client.crt"),
        "CURRENTS_KAFKA_TLS_KEY_FILE": str(certs / "client.key"),
    }


@pytest.fixture(scope="module")
def tls_engine(
    compose: dict[str, Any],
    project_dir: Path,
    tls_redis: ServerProcess,
    kafka_over_tls: TlsTerminator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    env = engine_env(compose, project_dir, tls_redis.port)
    env["CURRENTS_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{kafka_over_tls.port}"
    servers = Servers(env["CURRENTS_KAFKA_BOOTSTRAP"], env["CURRENTS_REDIS_URL"], external=False)
    engine = start_engine(servers, tmp_path_factory.mktemp("tls-engine"), **env)
    yield engine
    stop_engine(engine)


def test_worker_and_api_work_over_tls_only(
    tls_engine: Engine, tls_redis: ServerProcess, kafka_over_tls: TlsTerminator
) -> None:
    # start_engine waited for /readyz 200: Redis answered PING over TLS, the producer
    # reached the broker through the terminator, the worker's heartbeat is in Redis.
    assert tls_engine.settings.redis_url is not None
    assert tls_engine.settings.redis_url.startswith("rediss://currents:")
    user = f"tls-{uuid.uuid4().hex[:8]}"
    accepted = tls_engine.post_events(
        example_event("product_viewed", event_id=f"e-{user}", user_id=user)
    )
    assert accepted.status_code == 202, accepted.text
    with tls_engine.client("admin") as client:

        def profile() -> dict[str, Any] | None:
            response = client.get(f"/v1/users/{user}/profile")
            return orjson.loads(response.content) if response.status_code == 200 else None

        found = poll(profile, timeout_s=20, what="the worker to fold the event over TLS")
    assert found["counts"] == {"product_viewed": 1}
    # The recommendations route's own reader (currents/redis_lean.py) speaks TLS and
    # AUTH too.
    with tls_engine.client("read") as client:
        answer = client.get(f"/v1/users/{user}/recommendations")
    assert answer.status_code == 200, answer.text
    # Every Kafka connection went through TLS and presented our client certificate.
    assert len(kafka_over_tls.clients) >= 3
    assert set(kafka_over_tls.clients) == {"currents"}


def test_the_compose_healthcheck_answers(
    compose: dict[str, Any], project_dir: Path, tls_redis: ServerProcess
) -> None:
    service = compose["services"]["redis"]
    argv = mapped(service["healthcheck"]["test"][1:], service, project_dir)
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli comes with Debian's redis-server (make tools)"
    ping = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(tls_redis.port), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert (ping.returncode, ping.stdout.strip()) == (0, "PONG"), ping.stderr


def test_redis_refuses_clients_without_the_password_or_a_certificate(
    tls_engine: Engine, tls_redis: ServerProcess, project_dir: Path
) -> None:
    certs = project_dir / "certs/currents"
    tls = {
        "ssl_ca_certs": str(certs / "ca.crt"),
        "ssl_certfile": str(certs / "client.crt"),
        "ssl_keyfile": str(certs / "client.key"),
    }
    base = f"rediss://127.0.0.1:{tls_redis.port}/0"
    anonymous = redis.Redis.from_url(base, socket_timeout=3, **tls)
    assert anonymous.ping() is True  # the healthcheck's one command
    with pytest.raises(redis.exceptions.NoPermissionError):
        anonymous.get("currents:counters")
    wrong = base.replace("rediss://", "rediss://currents:wrong@")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(wrong, socket_timeout=3, **tls).ping()
    no_certificate = {k: v for k, v in tls.items() if k == "ssl_ca_certs"}
    # TLS 1.3 reports the server's refusal on the first read or the first write, so the
    # message varies; the same client with a certificate got in above.
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(
            tls_engine.servers.redis_url, socket_timeout=3, **no_certificate
        ).ping()


def test_benchmark_clients_take_the_same_settings(
    tls_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmarks' Redis clients read CURRENTS_REDIS_TLS_* like the engine."""
    for key, value in tls_engine.env.items():
        if key.startswith("CURRENTS_"):
            monkeypatch.setenv(key, value)
    url = tls_engine.servers.redis_url
    client = redis_client(url)
    try:
        assert client.ping() is True
        # The engine's counters, read through the test fixtures' own client, agree.
        assert counter(client) == counter(tls_engine.redis())
    finally:
        client.close()
    segments = yaml.safe_load((REPO / "examples/segments.yaml").read_text())
    campaigns = yaml.safe_load((REPO / "examples/campaigns.yaml").read_text())
    loaded = asyncio.run(load_definitions(url))
    assert loaded == (len(segments), len(campaigns))


def test_a_wrong_ca_is_a_clear_error(tls_engine: Engine, project_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(
        ["bash", str(REPO / "examples/tls/make-certs.sh"), str(other)],
        capture_output=True,
        check=True,
    )
    env = {**tls_engine.env, "CURRENTS_REDIS_TLS_CA_FILE": str(other / "currents/ca.crt")}
    env["CURRENTS_API_PORT"] = str(port := free_port())
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "currents.cli", "api"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    try:

        def answer() -> httpx.Response | None:
            if api.poll() is not None:
                return None
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
            except httpx.HTTPError:
                return None

        readyz = poll(lambda: answer() or api.poll() is not None, timeout_s=30, what="the API")
        assert isinstance(readyz, httpx.Response), log.read_text()[-3000:]
        assert (readyz.status_code, readyz.json()["reasons"]) == (
            503,
            [
                "redis unreachable: TLS certificate verification failed (self-signed "
                "certificate in certificate chain); check CURRENTS_REDIS_TLS_CA_FILE"
            ],
        )
    finally:
        api.terminate()
        api.wait(15)
