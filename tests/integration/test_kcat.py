"""The topic contract with a real external client: kcat (Debian package `kcat`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import orjson
import pytest

from tests.integration.conftest import Engine, poll
from tests.integration.test_pipeline import interaction, item, recommendations, teach_pairs


@pytest.fixture(scope="module")
def kcat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Debian's kcat. Its librdkafka 2.0.2 misparses the tagged fields of Tansu's
    ApiVersions v3 answer, so against the embedded broker it runs on the newer librdkafka
    that the confluent-kafka wheel ships (see docs/events.md); on a real Kafka it runs as is."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not installed; `make test` installs it (apt-get install kcat)", pytrace=False
        )
    libs = sorted(
        Path(confluent_kafka.__file__).parent.parent.glob("confluent_kafka.libs/librdkafka*")
    )
    if not libs:
        pytest.fail("confluent-kafka's bundled librdkafka is missing", pytrace=False)
    lib_dir = tmp_path_factory.mktemp("librdkafka")
    (lib_dir / "librdkafka.so.1").symlink_to(libs[0])
    previous = os.environ.get("LD_LIBRARY_PATH")
    os.environ["LD_LIBRARY_PATH"] = str(lib_dir)
    yield [path]
    if previous is None:
        del os.environ["LD_LIBRARY_PATH"]
    else:
        os.environ["LD_LIBRARY_PATH"] = previous


def test_event_produced_with_kcat_changes_recommendations(
    engine: Engine, unique: str, kcat: list[str]
) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    user = f"kcat-{unique}"
    engine.post_events([item(a), item(b)])
    teach_pairs(engine, unique, [(a, b)])
    assert recommendations(engine, user)["personalized"] is False

    line = f"{user}:".encode() + orjson.dumps(interaction("product_viewed", user, a)) + b"\n"
    subprocess.run(
        [*kcat, "-b", engine.servers.bootstrap, "-t", engine.settings.events_topic, "-P", "-K:"],
        input=line,
        check=True,
        timeout=30,
    )
    poll(
        lambda: [i["item_id"] for i in recommendations(engine, user)["items"]][:1] == [b],
        what="kcat-produced view to personalize the list",
    )
    assert recommendations(engine, user)["personalized"] is True


def test_kcat_reads_the_dead_letter_topic(engine: Engine, unique: str, kcat: list[str]) -> None:
    marker = f"not-json-{unique}".encode()
    subprocess.run(
        [*kcat, "-b", engine.servers.bootstrap, "-t", engine.settings.events_topic, "-P", "-K:"],
        input=b"k:" + marker + b"\n",
        check=True,
        timeout=30,
    )

    def dead_letter_seen() -> bool:
        out = subprocess.run(
            [
                *kcat,
                "-b",
                engine.servers.bootstrap,
                "-t",
                engine.settings.dlq_topic,
                "-C",
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
        letters = [orjson.loads(line) for line in out.splitlines() if line.strip()]
        return any(unique in b64decode(x["original_b64"]).decode(errors="replace") for x in letters)

    poll(dead_letter_seen, what="kcat to read the dead letter")
