"""TLS and SASL for every Kafka client, built from the settings in each library's shape.

- aiokafka (the API's producer, the dashboard's lag probe, the generator, the benchmarks)
  and kafka-python (topic creation) take the same keyword arguments: :func:`client_options`.
- Faust (the worker) takes a credentials object and turns it into those arguments itself
  (``credentials_to_aiokafka_auth`` in ``faust/transport/drivers/aiokafka.py``), for its
  consumer and its producer alike: :func:`faust_credentials`.

Both come from one SSL context (:func:`tls_context`): the CA bundle, an optional client
certificate, and the hostname check. SCRAM passwords travel as the ``sasl_plain_*``
arguments in both libraries; only the mechanism name says PLAIN or SCRAM.
"""

from __future__ import annotations

import ssl
from typing import Any

from currents.errors import ConfigurationError
from currents.settings import Settings

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context that verifies the brokers (and presents our certificate), or None when
    the protocol has no TLS. Without a CA file the system's trust store is used."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    ca, cert, key = (
        settings.kafka_tls_ca_file,
        settings.kafka_tls_cert_file,
        settings.kafka_tls_key_file,
    )
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None
        )
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (ssl.SSLError, OSError) as error:
        raise ConfigurationError(
            f"cannot load the Kafka TLS files (CA {ca}, certificate {cert}, key {key}): {error}"
        ) from error
    context.check_hostname = settings.kafka_tls_check_hostname
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer`` and kafka-python's
    ``KafkaAdminClient`` (both spell them the same way)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = tls_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol in SASL_PROTOCOLS:
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for ``faust.App``: None, ``SSLCredentials`` or
    ``SASLCredentials`` (whose protocol is SASL_SSL exactly when it carries a context)."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )
