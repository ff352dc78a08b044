"""Hypothesis profiles: CI replays a fixed example set; `HYPOTHESIS_PROFILE=explore` digs deeper."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=2000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: object) -> None:
    parser.addoption(  # type: ignore[attr-defined]
        "--long",
        action="store_true",
        help="run the reliability scenarios at full size (the numbers in docs/reliability.md)",
    )
