"""The Dockerfile reproduction (tests/image_build.py) follows Docker's rules, and the
project's .dockerignore keeps the package in and secrets and environments out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.dockerignore import context_files, excluded, parse_dockerignore
from tests.image_build import (
    Builder,
    BuildError,
    Image,
    Instruction,
    interpreter_for,
    parse_dockerfile,
)

ROOT = Path(__file__).resolve().parents[2]


def test_dockerignore_matching_follows_docker() -> None:
    # Cases from Docker's documentation and moby/patternmatcher's tests.
    rules = parse_dockerignore(
        "# comment\n*/temp*\n*/*/temp*\ntemp?\n/rooted\n**/*.log\n!keep.log\n[ab].txt\ndocs/\n"
    )
    paths = {
        "somedir/temporary.txt": True,
        "somedir/temp": True,
        "somedir/subdir/temporary.txt": True,
        "a/b/c/temporary.txt": False,  # */*/temp* is two levels deep exactly
        "tempa": True,
        "tempab": False,
        "temp": False,
        "rooted/file": True,  # a directory excludes what is under it
        "x/rooted": False,
        "app.log": True,
        "deep/down/app.log": True,
        "keep.log": False,  # the later ! re-includes it
        "a.txt": True,
        "c.txt": False,
        "docs/index.md": True,
        "docsy/index.md": False,
    }
    assert {p: excluded(p, rules) for p in paths} == paths


def test_the_last_matching_pattern_decides() -> None:
    rules = parse_dockerignore("*.md\n!README*.md\nREADME-secret.md\n")
    assert [excluded(p, rules) for p in ("a.md", "README.md", "README-secret.md")] == [
        True,
        False,
        True,
    ]


def test_the_project_context_is_the_package_without_secrets_or_environments(
    tmp_path: Path,
) -> None:
    rules = parse_dockerignore((ROOT / ".dockerignore").read_text())
    files = set(context_files(ROOT, rules))
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    assert {"pyproject.toml", "README.md"} | {f"{p}/__init__.py" for p in packages} <= files
    assert "serving/web/static/index.html" in files
    assert [f for f in files if f.split("/")[0] in {".git", ".venv", "tests", ".currents"}] == []
    assert [f for f in files if "__pycache__" in f] == []
    for secret in ("certs/ca.crt", "certs/redis.key", "serving/kafka.pem", "x/client.key"):
        assert excluded(secret, rules), secret


def test_dockerfile_instructions_and_continuations() -> None:
    text = 'FROM python:3.11-slim\nENV A=1 B="two words"\nRUN pip install . \\\n  && useradd x\n'
    parsed = parse_dockerfile(text)
    assert [(i.keyword, i.arguments, i.line) for i in parsed] == [
        ("FROM", "python:3.11-slim", 1),
        ("ENV", 'A=1 B="two words"', 2),
        ("RUN", "pip install .    && useradd x", 3),
    ]
    assert Instruction("CMD", '["api", "--port", "1"]', 1).exec_form() == ["api", "--port", "1"]
    assert Instruction("CMD", "api --port 1", 1).exec_form() is None


def test_only_official_python_images_are_reproduced() -> None:
    with pytest.raises(BuildError, match="only the official python"):
        interpreter_for("debian:bookworm")
    assert interpreter_for("python:3.11-slim")[1] == "3.11"


def builder_with_image(tmp_path: Path, files: dict[str, str]) -> Builder:
    """A builder whose context holds ``files``, past FROM (no venv is needed for COPY,
    USER or a refused RUN)."""
    builder = Builder(tmp_path / "project", tmp_path / "work")
    for name, body in files.items():
        path = builder.context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    builder.image = Image(root=tmp_path / "root", venv=tmp_path / "venv", python_version="3.11")
    builder.image.workdir = "/app"
    return builder


def test_copy_follows_docker(tmp_path: Path) -> None:
    builder = builder_with_image(tmp_path, {"a.txt": "a", "pkg/m.py": "m", "pkg/sub/n.py": "n"})
    builder.do_copy(Instruction("COPY", "a.txt ./", 1))
    builder.do_copy(Instruction("COPY", "pkg pkg", 2))
    builder.do_copy(Instruction("COPY", ". /all", 3))
    root = tmp_path / "root"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "all/a.txt",
        "all/pkg/m.py",
        "all/pkg/sub/n.py",
        "app/a.txt",
        "app/pkg/m.py",
        "app/pkg/sub/n.py",
    ]


def test_copy_of_a_missing_directory_fails_the_build(tmp_path: Path) -> None:
    builder = builder_with_image(tmp_path, {"currents/__init__.py": ""})
    with pytest.raises(BuildError, match="'profiles' not found in the build context"):
        builder.do_copy(Instruction("COPY", "profiles profiles", 1))


def test_unknown_commands_fail_instead_of_running_on_the_host(tmp_path: Path) -> None:
    builder = builder_with_image(tmp_path, {})
    with pytest.raises(BuildError, match="does not know how to reproduce"):
        builder.do_run(Instruction("RUN", "apt-get install -y curl", 1))
    with pytest.raises(BuildError, match=re.escape("the shell operator '|' is not reproduced")):
        builder.do_run(Instruction("RUN", "useradd a | tee log", 1))
    with pytest.raises(BuildError, match="USER currents: no earlier RUN created that user"):
        builder.do_user(Instruction("USER", "currents", 1))
    builder.do_run(Instruction("RUN", "useradd --system --uid 10001 currents", 1))
    builder.do_user(Instruction("USER", "currents", 2))
    assert builder.image is not None and builder.image.user == "currents"
