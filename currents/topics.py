"""The topic contract: names, partitions, and idempotent creation (kafka-python admin)."""

from __future__ import annotations

import contextlib
import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from currents.errors import ConfigurationError
from currents.kafka_security import client_options
from currents.settings import Settings

log = logging.getLogger("currents.topics")


def topic_plan(settings: Settings) -> dict[str, int]:
    """Topic name -> partition count."""
    return {
        settings.events_topic: settings.events_partitions,
        settings.dlq_topic: 1,
        settings.segments_topic: settings.events_partitions,
        settings.profile_changes_topic: settings.events_partitions,
        settings.promotions_topic: settings.events_partitions,
        settings.promotions_dlq_topic: 1,
    }


def ensure_topics(bootstrap: str, settings: Settings, timeout_s: float = 30.0) -> None:
    """Create missing topics; wait until the broker answers. Existing topics are kept."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="currents-admin",
                request_timeout_ms=5000,
                # The client's own first-connection wait is 30 s; keep to our deadline.
                bootstrap_timeout_ms=max(500, int((deadline - time.monotonic()) * 1000)),
                **client_options(settings),
            )
        except KafkaError as error:
            last_error = error
            time.sleep(0.3)
            continue
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(name, partitions, 1)
                for name, partitions in topic_plan(settings).items()
                if name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(missing)
                log.info("topics created", extra={"topics": [t.name for t in missing]})
            return
        except KafkaError as error:
            last_error = error
            time.sleep(0.3)
        finally:
            admin.close()
    raise ConfigurationError(f"cannot create topics on {bootstrap}: {last_error}")
