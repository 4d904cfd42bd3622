"""docker-compose.prod.yml and the Dockerfile: the structure operators rely on."""

import re
from typing import Any

import pytest
import yaml

from libs.common.settings import ROOT

APP_SERVICES = ("migrate", "api", "calls", "worker", "scheduler")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())
    return data


def test_every_long_running_service_has_a_healthcheck_and_restart_policy(
    compose: dict[str, Any],
) -> None:
    for name, spec in compose["services"].items():
        if name == "migrate":  # one-shot: the others wait for it to complete successfully
            assert spec["restart"] == "no"
            continue
        assert "healthcheck" in spec, name
        assert spec.get("restart") == "unless-stopped", name


def test_what_others_wait_for_is_healthchecked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, spec in services.items():
        for dependency, rule in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
    for name in ("api", "calls", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_app_services_are_built_from_the_repository(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        assert compose["services"][name]["build"] == ".", name
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, re.M)
    assert user is not None and user.group(1) not in ("root", "0")
    # The pinned production tree, nothing floating (tests/deploy/test_image_dependencies.py).
    assert "requirements.prod.lock" in dockerfile


def test_no_secret_literal(compose: dict[str, Any]) -> None:
    secret_key = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY", re.I)
    for name, spec in compose["services"].items():
        environment = spec.get("environment") or {}
        for key, value in environment.items():
            if secret_key.search(key):
                assert str(value).startswith("${"), f"{name}.{key} holds a literal secret"
            assert not re.search(r"://[^:/@]+:[^$@/]+@", str(value)), f"{name}.{key}"


def test_every_variable_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.prod.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text)) | set(re.findall(r"\$\$\{([A-Z_]+)", text))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - documented == set()


def test_settings_variables_are_documented_in_env_example_or_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    settings_src = (ROOT / "libs" / "common" / "settings.py").read_text()
    for name in set(re.findall(r'reader\.\w+\("([A-Z_]+)"', settings_src)):
        assert f"`{name}`" in readme or name in readme, f"{name} missing from the README"


def _interpolate(text: str, env: dict[str, str]) -> str:
    """What `docker compose` does before validating: ${VAR}, ${VAR:-default}, ${VAR:?error}."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name, "")
        if op == ":-":
            return current or arg
        if op == ":?":
            assert current, f"{name} is required: {arg}"
        return current

    text = re.sub(r"(?<!\$)\$\{([A-Z_]+)(:-|:\?)?([^}]*)\}", value, text)
    return text.replace("$$", "$")


def test_compose_file_matches_the_compose_specification() -> None:
    import json

    import jsonschema

    example = dict(re.findall(r"^([A-Z_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    env = {k: v or "example-secret" for k, v in example.items()}
    text = _interpolate((ROOT / "docker-compose.prod.yml").read_text(), env)
    schema = json.loads((ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]
    assert errors == []
    # The schema is not a formality: a misspelt key is caught.
    broken = yaml.safe_load(text.replace("healthcheck:", "healthchek:", 1))
    assert list(validator.iter_errors(broken))
