"""`switchboard status`: never a traceback; non-zero only when a required part is down."""

import json
import subprocess
from pathlib import Path

import redis

from libs.common.db import Database
from tests.support.processes import service_env, switchboard_argv
from tests.support.services import unreachable_redis_url


def _status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        switchboard_argv("status", "--json"), env=env, capture_output=True, text=True, timeout=60
    )


def test_no_worker_running_is_reported_missing_without_error(
    database_url: str, redis_url: str, redis_client: redis.Redis, db: Database, tmp_path: Path
) -> None:
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, SWITCHBOARD_VAR_DIR=str(tmp_path)
    )
    result = _status(env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr
    report = json.loads(result.stdout)
    workers = report["components"]["workers"]
    assert workers["state"] == "missing" and workers["required"] is False
    assert report["components"]["scheduler"]["state"] == "missing"
    assert report["components"]["database"]["migration"]["up_to_date"] is True
    assert set(report["components"]["queues"]["queues"]) >= {"default", "maintenance"}


def test_broker_down_exits_non_zero_without_a_traceback(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=unreachable_redis_url(),
        SWITCHBOARD_VAR_DIR=str(tmp_path),
    )
    result = _status(env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["components"]["broker"]["ok"] is False
    assert report["components"]["database"]["ok"] is True


def test_text_output_is_readable(database_url: str, redis_url: str, tmp_path: Path) -> None:
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, SWITCHBOARD_VAR_DIR=str(tmp_path)
    )
    result = subprocess.run(
        switchboard_argv("status"), env=env, capture_output=True, text=True, timeout=60
    )
    assert "switchboard status: OK" in result.stdout
    assert "workers" in result.stdout and "missing" in result.stdout


def test_bad_configuration_is_a_clear_usage_error(tmp_path: Path) -> None:
    env = service_env(LOG_LEVEL="chatty", SWITCHBOARD_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        switchboard_argv("status"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr
