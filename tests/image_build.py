"""What the Dockerfile would put in the image, rebuilt without Docker.

No Docker engine runs on the CI machines, so `tests/integration/test_image.py` reads the
Dockerfile and reproduces it in a temporary directory:

- the build context: the project's working tree filtered by ``.dockerignore`` with
  Docker's matching rules (tests/dockerignore.py);
- ``FROM python:X.Y-…``: a fresh venv of Python X.Y stands for the image's
  ``/usr/local`` (nothing from the development venv is visible in it);
- ``WORKDIR``, ``COPY`` and ``ENV`` as Docker applies them, under ``<tmp>/root``;
- ``RUN``: commands joined by ``&&``, each one of a short list this module knows how to
  reproduce (``pip``/``python -m pip`` run for real in the venv; ``useradd`` is recorded
  so that ``USER`` can be checked). Anything else fails the build by name, rather than
  running on the host or being skipped;
- ``ENTRYPOINT``/``CMD``/``EXPOSE`` are recorded for the test to run.

An instruction this module does not know fails the build too: the image test must not
pass by ignoring what the Dockerfile says.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.dockerignore import context_files, parse_dockerignore

# Host settings pip needs to reach the index the way this machine's builds do (the image
# builder would use its own network set-up). PIP_NO_CACHE_DIR is not among them: see
# ``pip_env``.
PASSED_THROUGH = ("HOME", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE")


class BuildError(Exception):
    """The Dockerfile cannot be built (or reproduced): the message says which step."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of ``CMD ["a", "b"]``-style instructions, or None (shell form)."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return None
        return value


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments dropped, ``\\`` continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        keyword, _, arguments = " ".join(pending).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    if pending:
        raise BuildError(f"Dockerfile line {start}: continuation never ends")
    return instructions


# --- the build -------------------------------------------------------------------------
@dataclass
class Image:
    """The result: a root directory standing for the image's file system, the venv
    standing for its Python, and the metadata the test runs."""

    root: Path
    venv: Path
    python_version: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    users: set[str] = field(default_factory=lambda: {"root"})
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def path(self, image_path: str) -> Path:
        """Where ``image_path`` (absolute, or relative to WORKDIR) lives under ``root``."""
        absolute = PurePosixPath(self.workdir) / image_path
        parts = [p for p in PurePosixPath(os.path.normpath(str(absolute))).parts if p != "/"]
        return self.root.joinpath(*parts)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def process_env(self, **overrides: str) -> dict[str, str]:
        """The environment of a process in the container: the image's ENV and PATH, plus
        what the runner sets (compose's ``environment:``); nothing else from the host."""
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
        }
        return {**env, **self.env, **overrides}

    def argv(self, command: list[str] | None = None) -> list[str]:
        """ENTRYPOINT + (``command`` or CMD), with the entrypoint resolved in the venv."""
        argv = [*self.entrypoint, *(self.cmd if command is None else command)]
        if not argv:
            raise BuildError("the image has neither ENTRYPOINT nor CMD")
        resolved = shutil.which(argv[0], path=str(self.bin))
        if resolved is None:
            raise BuildError(f"the entrypoint {argv[0]!r} is not installed in the image")
        return [resolved, *argv[1:]]


def interpreter_for(image: str) -> tuple[str, str]:
    """The local interpreter standing for ``FROM python:X.Y[-variant]``, and X.Y."""
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)[\w.-]*", image)
    if not match:
        raise BuildError(f"FROM {image}: only the official python:X.Y images are reproduced")
    version = f"{match[1]}.{match[2]}"
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return getattr(sys, "_base_executable", sys.executable), version
    found = shutil.which(f"python{version}")
    if found is None:
        raise BuildError(f"FROM {image}: python{version} is needed to reproduce the image")
    return found, version


def pip_env(image: Image) -> dict[str, str]:
    """pip's environment in a RUN: the image's ENV, except that the host's pip cache is
    used. The Dockerfile's PIP_NO_CACHE_DIR=1 keeps the cache out of the image's layer;
    here the same packages would be downloaded again on every test run (~150 MB), so
    the wheels `make setup` cached are reused. What pip installs does not change."""
    host = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH or k.startswith("PIP_")}
    env = {**image.process_env(), **host}
    env.pop("PIP_NO_CACHE_DIR", None)
    env["HOME"] = os.environ.get("HOME", env["HOME"])
    return env


class Builder:
    def __init__(self, project: Path, work: Path) -> None:
        self.project = project
        self.work = work
        self.context = work / "context"
        self.image: Image | None = None

    def build(self, dockerfile: str) -> Image:
        self.make_context()
        for instruction in parse_dockerfile(dockerfile):
            step = getattr(self, f"do_{instruction.keyword.lower()}", None)
            if step is None:
                raise BuildError(
                    f"Dockerfile line {instruction.line}: {instruction.keyword} is not "
                    "reproduced by tests/image_build.py"
                )
            if instruction.keyword != "FROM" and self.image is None:
                raise BuildError(f"Dockerfile line {instruction.line}: no FROM before it")
            try:
                step(instruction)
            except BuildError as error:
                raise BuildError(f"Dockerfile line {instruction.line}: {error}") from None
        if self.image is None:
            raise BuildError("the Dockerfile has no FROM")
        return self.image

    def make_context(self) -> None:
        ignore = self.project / ".dockerignore"
        try:
            patterns = parse_dockerignore(ignore.read_text()) if ignore.exists() else []
        except ValueError as error:
            raise BuildError(str(error)) from None
        for relative in context_files(self.project, patterns):
            source = self.project / relative
            target = self.context / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)

    # Each ``do_<keyword>`` applies one instruction.
    def do_from(self, instruction: Instruction) -> None:
        if self.image is not None:
            raise BuildError("multi-stage builds are not reproduced")
        name = instruction.arguments.split()[0]
        python, version = interpreter_for(name)
        venv = self.work / "python"
        self._run([python, "-m", "venv", str(venv)], "create the image's Python", cwd=self.work)
        root = self.work / "root"
        (root / "home").mkdir(parents=True)
        self.image = Image(root=root, venv=venv, python_version=version)

    def do_env(self, instruction: Instruction) -> None:
        assert self.image is not None
        words = shlex.split(instruction.arguments)
        if words and "=" not in words[0]:  # legacy `ENV NAME value with spaces`
            self.image.env[words[0]] = " ".join(words[1:])
            return
        for word in words:
            name, sep, value = word.partition("=")
            if not sep:
                raise BuildError(f"ENV {word!r}: expected NAME=value")
            self.image.env[name] = value

    def do_workdir(self, instruction: Instruction) -> None:
        assert self.image is not None
        self.image.workdir = str(PurePosixPath(self.image.workdir) / instruction.arguments)
        self.image.path(".").mkdir(parents=True, exist_ok=True)

    def do_copy(self, instruction: Instruction) -> None:
        assert self.image is not None
        words = shlex.split(instruction.arguments)
        flags = [w for w in words if w.startswith("--")]
        if flags:
            raise BuildError(f"COPY {' '.join(flags)}: flags are not reproduced")
        form = instruction.exec_form()
        if form is not None:
            words = form
        if len(words) < 2:
            raise BuildError("COPY needs a source and a destination")
        *sources, dest = words
        target = self.image.path(dest)
        into_directory = dest.endswith("/") or dest in {".", "./"} or len(sources) > 1
        for source in sources:
            matches = sorted(self.context.glob(source)) if any(c in source for c in "*?[") else []
            if not matches:
                candidate = self.context / os.path.normpath(source)
                if not candidate.exists():
                    raise BuildError(f"COPY failed: {source!r} not found in the build context")
                matches = [candidate]
            for match in matches:
                if match.is_dir():
                    shutil.copytree(match, target, dirs_exist_ok=True, symlinks=True)
                elif into_directory or target.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, target / match.name)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, target)

    def do_run(self, instruction: Instruction) -> None:
        assert self.image is not None
        if instruction.exec_form() is not None:
            commands = [instruction.exec_form() or []]
        else:
            commands = _and_list(instruction.arguments)
        for argv in commands:
            self._run_in_image(argv)

    def do_user(self, instruction: Instruction) -> None:
        assert self.image is not None
        user = instruction.arguments.split(":")[0]
        if user not in self.image.users and not user.isdigit():
            raise BuildError(f"USER {user}: no earlier RUN created that user")
        self.image.user = user

    def do_expose(self, instruction: Instruction) -> None:
        assert self.image is not None
        self.image.exposed += instruction.arguments.split()

    def do_entrypoint(self, instruction: Instruction) -> None:
        assert self.image is not None
        self.image.entrypoint = self._exec_form(instruction)
        self.image.cmd = []  # Docker resets CMD when ENTRYPOINT is set

    def do_cmd(self, instruction: Instruction) -> None:
        assert self.image is not None
        self.image.cmd = self._exec_form(instruction)

    def do_label(self, _instruction: Instruction) -> None:
        return None  # metadata only

    @staticmethod
    def _exec_form(instruction: Instruction) -> list[str]:
        form = instruction.exec_form()
        if form is None:
            raise BuildError(f"{instruction.keyword}: only the exec (JSON) form is reproduced")
        return form

    def _run_in_image(self, argv: list[str]) -> None:
        assert self.image is not None
        if not argv:
            raise BuildError("RUN: empty command")
        program = argv[0]
        if program in {"pip", "pip3"}:
            self._pip(argv[1:])
        elif program in {"python", "python3"} and argv[1:3] == ["-m", "pip"]:
            self._pip(argv[3:])
        elif program == "useradd":
            self.image.users.add(_useradd_name(argv[1:]))
            self.image.log.append(f"useradd {shlex.join(argv[1:])} (recorded, not run)")
        else:
            raise BuildError(
                f"RUN {shlex.join(argv)}: tests/image_build.py does not know how to "
                "reproduce this command"
            )

    def _pip(self, arguments: list[str]) -> None:
        assert self.image is not None
        argv = [str(self.image.bin / "python"), "-m", "pip", *arguments]
        self._run(argv, f"RUN pip {shlex.join(arguments)}", env=pip_env(self.image))

    def _run(
        self,
        argv: list[str],
        what: str,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        assert self.image is not None or cwd is not None
        result = subprocess.run(
            argv,
            cwd=cwd or (self.image.path(".") if self.image else None),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        output = (result.stdout + result.stderr).strip()
        if self.image is not None:
            self.image.log.append(f"$ {what}\n{output[-2000:]}")
        if result.returncode != 0:
            tail = "\n".join(output.splitlines()[-25:])
            raise BuildError(f"{what} exited with {result.returncode}:\n{tail}")


def _and_list(command: str) -> list[list[str]]:
    """``a && b`` as argv lists; any other shell operator is refused.

    >>> _and_list("pip install . && useradd --system currents")
    [['pip', 'install', '.'], ['useradd', '--system', 'currents']]
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token == "&&":
            commands.append([])
        elif token and set(token) <= set("();<>|&"):
            raise BuildError(f"RUN: the shell operator {token!r} is not reproduced")
        else:
            commands[-1].append(token)
    return commands


def _useradd_name(arguments: list[str]) -> str:
    with_value = {"--uid", "-u", "--gid", "-g", "--home-dir", "-d", "--shell", "-s", "-G"}
    known = {"--system", "-r", "--no-create-home", "-M", "--create-home", "-m"}
    rest = list(arguments)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in with_value:
            rest.pop(0)
        elif flag not in known and not fnmatch.fnmatch(flag, "--*=*"):
            raise BuildError(f"useradd {flag}: not reproduced")
    if len(rest) != 1:
        raise BuildError(f"useradd {shlex.join(arguments)}: expected one user name")
    return rest[0]
