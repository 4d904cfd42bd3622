from pathlib import Path

import pytest

from libs.common.crypto import generate_key
from libs.common.settings import ConfigError, Settings


def test_local_defaults_are_safe() -> None:
    settings = Settings.from_env({})
    assert settings.app_env == "development"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("var/switchboard.db")
    assert settings.redis_url is None
    assert settings.log_format == "text"


def test_var_dir_moves_the_default_database(tmp_path: Path) -> None:
    settings = Settings.from_env({"SWITCHBOARD_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'switchboard.db'}"
    assert settings.metrics_dir == tmp_path / "metrics"


def test_production_names_every_missing_secret() -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"APP_ENV": "production", "SERVICE_ROLE": "worker"})
    message = str(excinfo.value)
    for name in ("DATABASE_URL", "REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
                 "ENCRYPTION_KEYS"):  # fmt: skip
        assert name in message


def test_production_refuses_to_start_without_redis() -> None:
    env = {
        "APP_ENV": "production",
        "SERVICE_ROLE": "api",
        "DATABASE_URL": "postgresql://db/switchboard",
        "PUBLIC_BASE_URL": "https://example.test",
    }
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env(env)
    settings = Settings.from_env(
        {**env, "REDIS_URL": "redis://redis:6379/0", "ENCRYPTION_KEYS": generate_key()}
    )
    assert settings.log_format == "json"


def test_a_malformed_encryption_key_is_named_not_printed() -> None:
    good = generate_key()
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"ENCRYPTION_KEYS": f"{good},not-a-fernet-key"})
    message = str(excinfo.value)
    assert "ENCRYPTION_KEYS: key 2 of 2" in message and "not-a-fernet-key" not in message
    assert good not in message


def test_a_production_start_without_an_encryption_key_names_it() -> None:
    env = {"APP_ENV": "production", "SERVICE_ROLE": "api", "DATABASE_URL": "postgresql://db/x",
           "PUBLIC_BASE_URL": "https://example.test",
           "REDIS_URL": "redis://redis:6379/0"}  # fmt: skip
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SERVICE_ROLE", "web", "SERVICE_ROLE='web' is not one of"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='LOUD' is not one of"),
        ("SCHEDULER_TICK_S", "soon", "SCHEDULER_TICK_S='soon' is not a number"),
        ("BROKER_CHECK_TIMEOUT_S", "5", "BROKER_CHECK_TIMEOUT_S=5 must be between"),
        ("WORKER_BACKGROUND_POLL_MS", "0", "WORKER_BACKGROUND_POLL_MS=0 must be between"),
        ("PUBLIC_BASE_URL", "example.test", "PUBLIC_BASE_URL must start with"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({name: value})
    assert fragment in str(excinfo.value)


def test_secrets_are_not_in_repr() -> None:
    settings = Settings.from_env({"TWILIO_AUTH_TOKEN": "very-secret-token"})
    assert "very-secret-token" not in repr(settings)


# --- the broker: BROKER_URL, Sentinel URLs ---------------------------------------------------


def test_the_broker_is_redis_unless_broker_url_says_otherwise() -> None:
    from libs.common.settings import Settings

    redis_only = Settings.from_env({"REDIS_URL": "redis://r:6379/0"})
    assert (redis_only.queue_broker_url, redis_only.broker_kind) == ("redis://r:6379/0", "redis")
    rabbit = Settings.from_env(
        {"REDIS_URL": "redis://r:6379/0", "BROKER_URL": "amqp://u:p@mq:5672/%2F"}
    )
    assert (rabbit.queue_broker_url, rabbit.broker_kind) == ("amqp://u:p@mq:5672/%2F", "rabbitmq")
    assert rabbit.redis_url == "redis://r:6379/0"  # coordination stays in Redis


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BROKER_URL", "kafka://k:9092", "BROKER_URL must start with one of"),
        ("REDIS_URL", "amqp://u:p@mq/", "REDIS_URL must start with one of"),
        ("REDIS_URL", "redis+sentinel://s:26379", "REDIS_URL: expected"),
        ("REDIS_URL", "redis+sentinel://s:x/master", "REDIS_URL: sentinel address"),
        ("REDIS_URL", "redis+sentinel://s:26379/master/zero", "REDIS_URL: the path"),
    ],
)
def test_bad_broker_urls_are_refused_by_name(name: str, value: str, message: str) -> None:
    from libs.common.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})


def test_a_sentinel_url_names_its_sentinels_service_db_and_password() -> None:
    from libs.common.redis_client import parse_sentinel_url

    address = parse_sentinel_url("redis+sentinel://:p%40ss@s1:26379,s2:26380,s3/switchboard/2")
    assert address.sentinels == (("s1", 26379), ("s2", 26380), ("s3", 26379))
    assert (address.service, address.db, address.password) == ("switchboard", 2, "p@ss")
    assert parse_sentinel_url("redis+sentinel://s1:26379/mymaster").db == 0
