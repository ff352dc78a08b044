"""Redis replies arrive as bytes (or str, depending on the client): one way to read them."""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str:
    """``value`` as str: bytes are decoded as UTF-8, anything else goes through str().

    >>> as_text(b"sku-1"), as_text("sku-1"), as_text(3)
    ('sku-1', 'sku-1', '3')
    """
    return value.decode() if isinstance(value, bytes) else str(value)
