"""The docs stay true to the code: examples, settings and keys are all documented."""

import json
import re
from pathlib import Path

from currents.settings import Settings
from schemas.examples import EXAMPLES, example_event

ROOT = Path(__file__).resolve().parents[2]


def test_events_doc_shows_every_example_exactly():
    text = (ROOT / "docs/events.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    assert blocks == [example_event(t) for t in EXAMPLES]


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"CURRENTS_{n.upper()}"
        for n in Settings.model_fields
        if f"`CURRENTS_{n.upper()}`" not in readme
    ]
    assert missing == []


def test_redis_layout_documents_every_key_builder():
    import inspect

    from currents import keys

    layout = (ROOT / "docs/redis-layout.md").read_text()
    builders = [
        name
        for name, f in inspect.getmembers(keys, inspect.isfunction)
        if f.__module__ == keys.__name__
        and not name.startswith("_")
        and name not in {"user_tag", "item_tag"}
    ]
    assert [b for b in builders if f"`{b}`" not in layout] == []
