"""TLS and SASL settings reach every Kafka and Redis client in the shape it takes, and
settings that look secure but would not be are refused."""

from __future__ import annotations

import inspect
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient
from pydantic import ValidationError

from currents.errors import ConfigurationError
from currents.kafka_security import client_options, faust_credentials
from currents.redis_client import tls_options
from currents.settings import Settings
from streams.app import create_app

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    made = subprocess.run(
        ["bash", str(ROOT / "examples/tls/make-certs.sh"), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:  # needs bash and openssl (`make tools`)
        pytest.fail(f"examples/tls/make-certs.sh failed:\n{made.stderr}", pytrace=False)
    return out


def kafka(certs: Path, protocol: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "broker:9093",
        "redis_url": "redis://r:6379/0",
        "kafka_security_protocol": protocol,
    }
    if "SSL" in protocol.split("_"):
        values |= {
            "kafka_tls_ca_file": certs / "currents/ca.crt",
            "kafka_tls_cert_file": certs / "currents/client.crt",
            "kafka_tls_key_file": certs / "currents/client.key",
        }
    if protocol.startswith("SASL"):
        values |= {"kafka_sasl_username": "currents", "kafka_sasl_password": "s3cret"}
    return Settings(**values | extra)


def describe(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the SSL context replaced by what it verifies and presents."""
    described = dict(options)
    context = described.pop("ssl_context", None)
    if context is not None:
        described["tls"] = {
            "verify": context.verify_mode == ssl.CERT_REQUIRED,
            "check_hostname": context.check_hostname,
            "cas": [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()],
        }
    return described


def test_each_protocol_gives_the_arguments_aiokafka_and_kafka_python_take(certs: Path) -> None:
    tls = {"verify": True, "check_hostname": True, "cas": ["Currents development CA"]}
    sasl = {
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "currents",
        "sasl_plain_password": "s3cret",
    }
    assert {p: describe(client_options(kafka(certs, p))) for p in PROTOCOLS} == {
        "PLAINTEXT": {"security_protocol": "PLAINTEXT"},
        "SSL": {"security_protocol": "SSL", "tls": tls},
        "SASL_PLAINTEXT": {"security_protocol": "SASL_PLAINTEXT", **sasl},
        "SASL_SSL": {"security_protocol": "SASL_SSL", **sasl, "tls": tls},
    }
    plain = kafka(certs, "SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_tls_check_hostname=False)
    assert describe(client_options(plain))["sasl_mechanism"] == "PLAIN"
    assert describe(client_options(plain))["tls"]["check_hostname"] is False


def test_every_argument_is_one_each_library_knows(certs: Path) -> None:
    names = set(client_options(kafka(certs, "SASL_SSL")))
    for client in (AIOKafkaProducer, AIOKafkaConsumer):
        assert names <= set(inspect.signature(client).parameters), client
    assert names <= set(KafkaAdminClient.DEFAULT_CONFIG)


async def test_aiokafka_clients_carry_the_settings(certs: Path) -> None:
    settings = kafka(certs, "SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256")
    producer = AIOKafkaProducer(bootstrap_servers="broker:9093", **client_options(settings))
    consumer = AIOKafkaConsumer(bootstrap_servers="broker:9093", **client_options(settings))
    try:
        for client in (producer.client, consumer._client):
            assert (
                client._security_protocol,
                client._sasl_mechanism,
                client._sasl_plain_username,
                client._sasl_plain_password,
                client._ssl_context.verify_mode,
            ) == ("SASL_SSL", "SCRAM-SHA-256", "currents", "s3cret", ssl.CERT_REQUIRED)
    finally:
        await producer.stop()
        await consumer.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_faust_maps_its_credentials_to_the_same_arguments(certs: Path, protocol: str) -> None:
    settings = kafka(certs, protocol)
    ours = describe(client_options(settings))
    theirs = describe(credentials_to_aiokafka_auth(faust_credentials(settings)))
    assert theirs == ours


async def test_the_worker_consumer_and_producer_carry_the_settings(
    certs: Path, tmp_path: Path
) -> None:
    """What Faust builds from the worker's app: the aiokafka consumer of the agent and
    the producer of the DLQ and outbound topics."""
    settings = kafka(
        certs, "SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", data_dir=tmp_path / "data"
    )
    app = create_app(settings)
    consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
    producer = app.producer._new_producer()
    try:
        for client in (consumer._client, producer.client):
            assert (
                client._security_protocol,
                client._sasl_mechanism,
                client._sasl_plain_username,
                client._ssl_context.get_ca_certs()[0]["subject"][0][0][1],
            ) == ("SASL_SSL", "SCRAM-SHA-512", "currents", "Currents development CA")
    finally:
        await consumer.stop()
        await producer.stop()


def test_redis_tls_arguments_only_for_rediss_urls(certs: Path) -> None:
    settings = Settings(
        kafka_bootstrap="b:1",
        redis_url="rediss://currents:pw@redis:6379/0",
        redis_tls_ca_file=certs / "currents/ca.crt",
        redis_tls_cert_file=certs / "currents/client.crt",
        redis_tls_key_file=certs / "currents/client.key",
        redis_tls_check_hostname=False,
    )
    assert tls_options("rediss://currents:pw@redis:6379/0", settings) == {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": str(certs / "currents/ca.crt"),
        "ssl_certfile": str(certs / "currents/client.crt"),
        "ssl_keyfile": str(certs / "currents/client.key"),
        "ssl_check_hostname": False,
    }
    assert tls_options("redis://redis:6379/0", settings) == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "CURRENTS_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs CURRENTS_KAFKA_SASL_USERNAME and "
            "CURRENTS_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_sasl_username": "u", "kafka_sasl_password": "p"},
            "CURRENTS_KAFKA_SASL_USERNAME/PASSWORD are set but CURRENTS_KAFKA_SECURITY_PROTOCOL "
            "is PLAINTEXT (use SASL_SSL or SASL_PLAINTEXT)",
        ),
        (
            {"kafka_tls_ca_file": "CA"},
            "CURRENTS_KAFKA_TLS_* files are set but CURRENTS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        ),
        (
            {"redis_tls_ca_file": "CA"},
            "CURRENTS_REDIS_TLS_* files are set but CURRENTS_REDIS_URL is not a rediss:// URL",
        ),
        (
            {"redis_url": "rediss://r", "redis_tls_key_file": "CA"},
            "CURRENTS_REDIS_TLS_KEY_FILE needs CURRENTS_REDIS_TLS_CERT_FILE",
        ),
        (
            {"kafka_bootstrap": None, "kafka_security_protocol": "SSL"},
            "the embedded broker (CURRENTS_KAFKA_BOOTSTRAP unset) speaks PLAINTEXT only",
        ),
    ],
)
def test_settings_that_look_secure_but_would_not_be_are_refused(
    certs: Path, values: dict[str, Any], message: str
) -> None:
    resolved = {k: certs / "currents/ca.crt" if v == "CA" else v for k, v in values.items()}
    base = {"kafka_bootstrap": "b:1", "redis_url": "redis://r"}
    with pytest.raises(ValidationError) as caught:
        Settings(**base | resolved)
    assert [e["msg"] for e in caught.value.errors()] == [f"Value error, {message}"]


def test_a_password_never_appears_in_a_settings_error() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(kafka_bootstrap="b:1", kafka_sasl_password="hunter2", redis_url="rediss://u:pw@r")
    assert "hunter2" not in str(caught.value) and "pw@" not in str(caught.value)


def test_the_sasl_password_is_hidden_in_reprs(certs: Path) -> None:
    settings = kafka(certs, "SASL_PLAINTEXT")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


def test_missing_or_unreadable_tls_files_are_clear_errors(certs: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="Path does not point to a file"):
        kafka(certs, "SSL", kafka_tls_ca_file=tmp_path / "missing.crt")
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="cannot load the Kafka TLS files"):
        client_options(kafka(certs, "SSL", kafka_tls_ca_file=garbage))
