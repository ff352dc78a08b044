"""docker-compose.yml and its TLS override are valid Compose files whose every Currents
variable is a setting that loads, and whose every command is a `currents` command.

No Docker engine runs here; the Compose Specification's JSON schema is vendored in
tests/compose_spec/ (see its README for the source commit and licence)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from currents.cli import build_parser
from currents.settings import Settings
from serving.main import create_app
from tests.compose_files import BASE, REPO, TLS, host_path, load, project
from tests.image_build import parse_dockerfile

SPEC = REPO / "tests" / "compose_spec"
PLACEHOLDERS = {  # what the operator exports before `docker compose up`
    "CURRENTS_API_KEYS": "",
    "CURRENTS_KAFKA_SASL_PASSWORD": "kafka-secret",
    "CURRENTS_REDIS_PASSWORD": "redis-secret",
}
VARIANTS = {"plain": (BASE,), "tls": (BASE, TLS)}
COMMANDS = {"topics": "topics", "worker": "worker", "api": "api", "generator": "generate"}


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SPEC / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def built_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's image (built from the Dockerfile)."""
    return {name: s for name, s in model["services"].items() if "build" in s}


def test_the_vendored_schema_is_the_one_its_readme_names() -> None:
    digest = hashlib.sha256((SPEC / "compose-spec.json").read_bytes()).hexdigest()
    assert digest in (SPEC / "README.md").read_text()
    assert "Apache License" in (SPEC / "LICENSE").read_text()


@pytest.mark.parametrize("path", [BASE, TLS], ids=lambda p: p.name)
def test_each_file_follows_the_compose_specification(path: Path) -> None:
    assert errors(load(path)) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_merged_project_follows_the_compose_specification(variant: str) -> None:
    assert errors(project(*VARIANTS[variant], variables=PLACEHOLDERS)) == []


def test_the_schema_refuses_a_misspelt_key() -> None:
    document = load(BASE)
    document["services"]["api"]["enviroment"] = document["services"]["api"].pop("environment")
    assert errors(document) == [
        "services/api: 'enviroment' does not match any of the regexes: '^x-'"
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_currents_variable_is_a_setting_that_loads(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = project(*VARIANTS[variant], variables=PLACEHOLDERS)
    services = built_services(model)
    assert sorted(services) == sorted(COMMANDS)
    loaded = {}
    for name, service in services.items():
        environment = {k: str(v) for k, v in service["environment"].items()}
        unknown = [
            k
            for k in environment
            if k.startswith("CURRENTS_")
            and k[len("CURRENTS_") :].lower() not in Settings.model_fields
        ]
        assert unknown == [], name
        for key in [k for k in os.environ if k.startswith("CURRENTS_")]:
            monkeypatch.delenv(key)
        for key, value in environment.items():
            # A file the container reads must come from one of its bind mounts.
            if value.startswith("/") and key.endswith("_FILE"):
                on_host = host_path(value, service, tmp_path)
                assert on_host is not None, f"{name}: {key}={value} is not under a mount"
                on_host.parent.mkdir(parents=True, exist_ok=True)
                on_host.touch()
                value = str(on_host)
            monkeypatch.setenv(key, value)
        settings = Settings()
        loaded[name] = (
            settings.kafka_bootstrap,
            settings.kafka_security_protocol,
            (settings.redis_url or "").split("@")[-1],
            settings.redis_tls_cert_file is not None,
        )
    expected = {
        "plain": ("kafka:9092", "PLAINTEXT", "redis://redis:6379/0", False),
        "tls": ("kafka:9092", "SASL_SSL", "redis:6379/0", True),
    }[variant]
    assert loaded == dict.fromkeys(COMMANDS, expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_command_is_a_currents_command(variant: str) -> None:
    image = {i.keyword: i.exec_form() for i in parse_dockerfile((REPO / "Dockerfile").read_text())}
    model = project(*VARIANTS[variant], variables=PLACEHOLDERS)
    parsed = {}
    for name, service in built_services(model).items():
        entrypoint = service.get("entrypoint", image["ENTRYPOINT"])
        command = service.get("command", image["CMD"] if "entrypoint" not in service else [])
        argv = [*entrypoint, *command]
        assert argv[0] == "currents", f"{name} runs {shlex.join(argv)}"
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{shlex.join(argv)}` is not a valid currents command")
        parsed[name] = args.command
    assert parsed == COMMANDS


def test_the_api_healthcheck_asks_for_a_real_route() -> None:
    api = load(BASE)["services"]["api"]
    test = api["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "healthcheck", "exec")
    port, path = re.findall(r"http://localhost:(\d+)(/[\w/-]*)", test[3])[0]
    app = create_app(Settings(kafka_bootstrap="kafka:9092", redis_url="redis://r"))
    routes = set(app.openapi()["paths"])
    assert (int(port), path in routes) == (Settings.model_fields["api_port"].default, True)
    assert f"{port}:{port}" in api["ports"]
