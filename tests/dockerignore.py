"""``.dockerignore`` as Docker reads it (moby/patternmatcher), for tests/image_build.py:
which files of the project the image's build context holds."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a `!pattern`: re-includes what it matches
    text: str


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's translation (moby/patternmatcher): ``*`` and ``?`` stop at ``/``, ``**``
    crosses directories, ``[...]`` is a class, ``\\`` escapes the next character."""
    out = "^"
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern[index + 1 : index + 2] == "*":
                index += 2
                if pattern[index : index + 1] == "/":
                    index += 1
                out += ".*" if index >= len(pattern) else "(.*/)?"
                continue
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                raise ValueError(f".dockerignore: unterminated [ in {pattern!r}")
            body = pattern[index + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out += re.escape(pattern[index])
        else:
            out += re.escape(char)
        index += 1
    return re.compile(out + "$")


def parse_dockerignore(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        body = line[1:].strip() if exclusion else line
        cleaned = os.path.normpath(body).lstrip("/")
        if cleaned in {"", "."}:
            continue
        patterns.append(Pattern(_pattern_regex(cleaned), exclusion, line))
    return patterns


def excluded(path: str, patterns: list[Pattern]) -> bool:
    """Whether ``path`` (relative, ``/``-separated) stays out of the context: the last
    pattern that matches it or one of its parent directories decides.

    >>> rules = parse_dockerignore("**/__pycache__\\n*.md\\n!README.md\\ndocs\\n")
    >>> [excluded(p, rules) for p in ("a/__pycache__/x.pyc", "NOTES.md", "README.md",
    ...                               "docs/a.md", "a/NOTES.md", "src/docs.py")]
    [True, True, False, True, False, False]
    """
    parts = path.split("/")
    parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    verdict = False
    for pattern in patterns:
        if pattern.regex.match(path) or any(pattern.regex.match(p) for p in parents):
            verdict = not pattern.exclusion
    return verdict


def context_files(project: Path, patterns: list[Pattern]) -> Iterator[str]:
    """Every file Docker would send as the build context, relative to ``project``.
    Excluded directories are not descended into unless a ``!`` pattern could re-include
    something inside them."""
    can_reinclude = any(p.exclusion for p in patterns)
    for directory, subdirs, files in os.walk(project):
        relative = Path(directory).relative_to(project).as_posix()
        prefix = "" if relative == "." else relative + "/"
        if not can_reinclude:
            subdirs[:] = [d for d in subdirs if not excluded(prefix + d, patterns)]
        subdirs.sort()
        for name in sorted(files):
            if not excluded(prefix + name, patterns):
                yield prefix + name
