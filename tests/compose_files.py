"""docker-compose files as Compose reads them: loaded, merged (Compose Specification
§13, "Merge and override") and interpolated (§12, "Interpolation"), for the parts of the
specification these files use. Shared by tests/unit/test_compose.py and
tests/integration/test_tls.py, which runs the TLS override's Redis for real."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "docker-compose.yml"
TLS = REPO / "docker-compose.tls.yml"
REPLACED = {"command", "entrypoint", "test"}  # §13: overridden, never appended
UNIQUE_BY_TARGET = {"volumes", "secrets", "configs"}
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


class MissingVariable(Exception):
    """A ``${NAME:?message}`` whose variable is unset (Compose refuses to start)."""


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


def _target(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry["target"])
    parts = str(entry).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def merge(base: Any, override: Any, key: str = "") -> Any:
    """``override`` merged into ``base``: mappings by key, sequences appended, except
    command/entrypoint/healthcheck.test (replaced) and volumes/secrets/configs (unique by
    target, the later entry wins).

    >>> merge({"a": {"x": 1}, "volumes": ["d:/data"]}, {"a": {"y": 2}, "volumes": ["e:/data"]})
    {'a': {'x': 1, 'y': 2}, 'volumes': ['e:/data']}
    """
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED:
        if key in UNIQUE_BY_TARGET:
            kept = {_target(e): e for e in base}
            kept.update({_target(e): e for e in override})
            return list(kept.values())
        return base + [e for e in override if e not in base]
    return override


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
    ``${NAME:?error}``, ``${NAME?error}`` and ``$$`` in every string of ``value``.

    >>> interpolate({"k": "${A:-x}/${B}/$$C"}, {"B": "b"})
    {'k': 'x/b/$C'}
    """
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        present = name in variables and (variables[name] != "" or not op.startswith(":"))
        if present:
            return variables[name]
        if op.endswith("?"):
            raise MissingVariable(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _VARIABLE.sub(substitute, value)


def project(*files: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    """The application model of ``files`` (later ones override), interpolated."""
    model: dict[str, Any] = {}
    for path in files:
        model = merge(model, load(path))
    return interpolate(model, variables)


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the project) of the bind mounts."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        if source.startswith((".", "/")):
            found[target] = source
    return found


def host_path(container_path: str, service: Mapping[str, Any], root: Path) -> Path | None:
    """Where ``container_path`` comes from on the host (``root`` stands for the project
    directory), or None when no bind mount covers it."""
    for target, source in sorted(mounts(service).items(), key=lambda m: -len(m[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return root / source / container_path[len(target) :].lstrip("/")
    return None
