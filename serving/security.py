"""API keys: configured as SHA-256 hashes with scopes, compared in constant time.

``CURRENTS_API_KEYS`` holds ``name:sha256-hex:scope+scope`` entries separated by ``;``.
Generate an entry with ``currents keygen NAME --scopes ingest,read,admin``.

>>> keys = parse_api_keys("demo:" + hash_key("s3cret") + ":read+ingest")
>>> sorted(authenticate(keys, "s3cret").scopes)
['ingest', 'read']
>>> authenticate(keys, "wrong") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from currents.errors import ConfigurationError

SCOPES = frozenset({"ingest", "read", "admin"})


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: bytes
    scopes: frozenset[str]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "cur_" + secrets.token_urlsafe(24)


def format_entry(name: str, secret: str, scopes: set[str] | frozenset[str]) -> str:
    return f"{name}:{hash_key(secret)}:{'+'.join(sorted(scopes))}"


def parse_api_keys(spec: str) -> list[ApiKey]:
    entries = []
    for raw in filter(None, (part.strip() for part in spec.split(";"))):
        try:
            name, digest, scopes_text = raw.split(":")
            digest_bytes = bytes.fromhex(digest)
        except ValueError:
            raise ConfigurationError(
                f"CURRENTS_API_KEYS entry {raw[:20]!r}…: expected name:sha256-hex:scope+scope"
            ) from None
        scopes = frozenset(filter(None, scopes_text.split("+")))
        if len(digest_bytes) != 32 or not scopes or not scopes <= SCOPES:
            raise ConfigurationError(
                f"CURRENTS_API_KEYS entry {name!r}: needs a 64-hex SHA-256 and scopes from "
                f"{sorted(SCOPES)}"
            )
        entries.append(ApiKey(name, digest_bytes, scopes))
    return entries


def authenticate(keys: list[ApiKey], presented: str) -> ApiKey | None:
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        if hmac.compare_digest(key.digest, digest):
            found = key
    return found
