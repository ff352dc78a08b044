"""The demo storefront (``/``) and operator dashboard (``/dashboard``): static pages, no
build step. They call the public API from the browser with an API key:

- the storefront gets a read+ingest key from ``/demo-config.js`` when the API runs with
  ``CURRENTS_DEMO_PAGE_KEY`` (``currents up --demo`` sets it); otherwise it asks for one;
- the dashboard asks the operator for an admin key (kept in ``sessionStorage``) for the
  admin-only panels; without one it shows only the public ``/metrics``.

Every page carries a Content-Security-Policy that allows nothing from outside this origin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response

from serving.deps import SettingsDep
from serving.security import authenticate

router = APIRouter(tags=["web"], include_in_schema=False)

STATIC = FilePath(__file__).resolve().parent.parent / "web" / "static"
ASSET_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg)$"
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> Response:
    path = STATIC / name
    if not re.fullmatch(r"[a-z0-9_-]+\.(html|js|css|svg)", name) or not path.is_file():
        raise HTTPException(404, "no such page")
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return Response(path.read_bytes(), media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
async def storefront() -> Response:
    return _file("index.html")


@router.get("/dashboard")
async def dashboard() -> Response:
    return _file("dashboard.html")


@router.get("/static/{name}")
async def asset(name: Annotated[str, Path(pattern=ASSET_NAME)]) -> Response:
    return _file(name)


@router.get("/demo-config.js")
async def demo_config(request: Request, settings: SettingsDep) -> Response:
    """The storefront's key, only when the API runs in demo mode (read+ingest, never admin:
    a configured key that carries the admin scope, or that is unknown, is not handed out)."""
    key = settings.demo_page_key
    known = authenticate(request.app.state.api_keys, key) if key else None
    config = {"apiKey": key if known is not None and "admin" not in known.scopes else None}
    body = f"window.CURRENTS_CONFIG = {json.dumps(config)};\n"
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return Response(body, media_type=MEDIA_TYPES["js"], headers=headers)
