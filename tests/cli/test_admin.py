"""`switchboard business create` and `token create`."""

import subprocess
from pathlib import Path

from flask.testing import FlaskClient

from libs.common.db import Database
from tests.support.processes import service_env, switchboard_argv


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        switchboard_argv(*args), env=env, capture_output=True, text=True, timeout=60
    )


def test_created_token_authenticates(
    database_url: str, db: Database, client: FlaskClient, tmp_path: Path
) -> None:
    env = service_env(DATABASE_URL=database_url, SWITCHBOARD_VAR_DIR=str(tmp_path))
    created = _cli(env, "business", "create", "--name", "Acme", "--timezone", "Europe/Berlin")
    assert created.returncode == 0, created.stderr
    business_id = created.stdout.split()[1]
    token = _cli(env, "token", "create", "--business-id", business_id).stdout.strip()
    assert token.startswith("sb_")
    me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json["business"]["timezone"] == "Europe/Berlin"
    operator = _cli(env, "token", "create", "--operator").stdout.strip()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {operator}"}).json["role"] == (
        "operator"
    )


def test_bad_arguments_are_clear_errors(database_url: str, db: Database, tmp_path: Path) -> None:
    env = service_env(DATABASE_URL=database_url, SWITCHBOARD_VAR_DIR=str(tmp_path))
    bad_zone = _cli(env, "business", "create", "--name", "X", "--timezone", "Mars/Base")
    assert bad_zone.returncode == 2 and "IANA time zone" in bad_zone.stderr
    neither = _cli(env, "token", "create")
    assert neither.returncode == 2 and "exactly one" in neither.stderr
    missing = _cli(env, "token", "create", "--business-id", "424242")
    assert missing.returncode == 2 and "no business 424242" in missing.stderr
    for result in (bad_zone, neither, missing):
        assert "Traceback" not in result.stderr
