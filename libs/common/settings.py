"""One typed settings object, read from the environment once.

Local defaults are safe (SQLite under ``var/``, embedded Redis, provider simulators); in
production (``APP_ENV=production``) every missing secret stops the process with its name.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

#: Repository root: ``var/`` and the default SQLite file live under it.
ROOT = Path(__file__).resolve().parents[2]

ROLES = ("api", "calls", "worker", "scheduler", "cli")
ENVIRONMENTS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
#: URL schemes of RabbitMQ brokers (Dramatiq's RabbitmqBroker through pika).
AMQP_SCHEMES = ("amqp://", "amqps://")
#: URL schemes a Redis URL may have (``redis+sentinel`` names a Sentinel-managed master).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")

#: Variables a production process refuses to start without, per role.
PRODUCTION_REQUIRED: dict[str, tuple[str, ...]] = {
    "api": ("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "ENCRYPTION_KEYS"),
    # calls: its agents transfer calls (Twilio REST) and read businesses' model keys.
    "calls": (
        "DATABASE_URL",
        "REDIS_URL",
        "PUBLIC_BASE_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "ENCRYPTION_KEYS",
    ),
    "worker": (
        "DATABASE_URL",
        "REDIS_URL",
        "PUBLIC_BASE_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "ENCRYPTION_KEYS",
    ),
    "scheduler": ("DATABASE_URL", "REDIS_URL"),
    "cli": ("DATABASE_URL",),
}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def parse_keys(raw: str) -> list[Fernet]:
    """ENCRYPTION_KEYS as Fernet keys, newest first (libs/common/crypto.py encrypts with them).
    Raises ConfigError naming the variable and the key's position, never the key."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ConfigError("ENCRYPTION_KEYS is empty")
    fernets = []
    for position, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ConfigError(
                f"ENCRYPTION_KEYS: key {position} of {len(keys)} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; `switchboard crypto generate-key` makes one)"
            ) from None
    return fernets


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    service_role: str = "cli"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'switchboard.db'}"
    #: Coordination Redis (leader lock, rate limits, nonces, heartbeats, queue statistics), and
    #: the broker too unless ``broker_url`` is set. None means "no Redis configured": only the
    #: local stack and tests may then embed one.
    redis_url: str | None = None
    #: The message broker when it is not ``redis_url``: ``amqp://`` (RabbitMQ) or a Redis URL.
    broker_url: str | None = None
    #: RabbitMQ's management API, read for the messages consumers hold (in progress, delayed);
    #: None derives it from ``broker_url`` (same host and credentials, port 15672).
    rabbitmq_management_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8080"
    log_level: str = "INFO"
    log_format: str = "text"
    var_dir: Path = ROOT / "var"
    metrics_dir: Path = ROOT / "var" / "metrics"
    #: Upper bound of the broker reachability check done before anything is written.
    broker_check_timeout_s: float = 0.5
    #: Upper bound of the database's part of a health read (/readyz, /api/queue/status).
    database_check_timeout_s: float = 2.0
    worker_heartbeat_interval_s: float = 5.0
    #: Longest idle wait between polls of a background or delay queue (milliseconds).
    worker_background_poll_ms: int = 1000
    #: Longest block of an idle consumer of an urgent queue on Redis (milliseconds): an enqueue
    #: wakes it at once; the block's end only bounds how soon it sees a message no enqueue
    #: announced (a dead worker's, moved back) and refreshes its heartbeat. Below the Redis
    #: client's 10-s socket timeout.
    worker_idle_block_ms: int = 2000
    worker_heartbeat_ttl_s: float = 20.0
    scheduler_tick_s: float = 15.0
    scheduler_lock_ttl_s: float = 10.0
    #: How often the scheduler checks for due daily schedules.
    schedule_tick_s: float = 60.0
    #: A schedule found due later than this after its instant is recorded missed, not called
    #: (nobody wants yesterday's 09:00 call at 17:00); it is also how far a restarted
    #: scheduler catches up ticks it missed.
    schedule_grace_s: float = 3600.0
    #: Manual due checks (POST /api/schedules/trigger) allowed per caller per minute.
    schedule_trigger_per_minute: int = 6
    #: A BackgroundJob still queued or running after this long is failed by the reconciler.
    background_job_stall_s: float = 3600.0
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_api_base: str | None = None
    #: Number outbound calls come from (Twilio's test number by default).
    twilio_from_number: str = "+15005550006"
    #: Account-wide calls-per-second limit shared by every worker process.
    twilio_cps: float = 1.0
    #: A job "dialing" with no provider call id after this long is failed by the reconciler.
    dialing_timeout_s: float = 60.0
    #: A call with no final status after this long is looked up at the provider.
    call_max_duration_s: float = 4 * 3600.0
    #: How long the provider lets a call ring before giving up (US guidance: at least 15 s).
    ring_timeout_s: int = 30
    #: Where inbound call audio is written as WAV files (one per call).
    recordings_dir: Path = ROOT / "var" / "recordings"
    #: "module:Class" of the voice agent that talks to inbound callers.
    voice_agent: str = "services.calls.media.agent:KeypadAgent"
    #: The wss:// URL Twilio is told to stream to (and signs). Unset: PUBLIC_BASE_URL's
    #: /ws/media, which nginx routes to the media server; locally, the media server's own.
    media_stream_url: str = ""
    #: Threads of each media-server process for blocking work (database, broker, Twilio REST).
    #: Few: each busy one takes the GIL from the event loop that paces every stream's audio.
    media_blocking_threads: int = 4
    #: Realtime speech-to-speech model (OpenAI Realtime API wire format) and the HTTP API of
    #: the cascaded pipeline's models; a business's own key overrides OPENAI_API_KEY.
    realtime_api_base: str = "wss://api.openai.com/v1"
    model_api_base: str = "https://api.openai.com/v1"
    openai_api_key: str | None = field(default=None, repr=False)
    realtime_model: str = "gpt-realtime"
    google_client_id: str | None = None
    google_client_secret: str | None = field(default=None, repr=False)
    #: Google's OAuth endpoints and the Gmail API root; unset means Google itself. The local
    #: stack and the tests point them at the Gmail simulator.
    google_auth_uri: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_uri: str = "https://oauth2.googleapis.com/token"
    gmail_api_endpoint: str | None = None
    #: Gmail search for a first sync; later syncs read the mailbox history instead.
    gmail_receipts_query: str = (
        '{receipt invoice "order confirmation" "payment received" "your order" "amount paid"}'
    )
    gmail_lookback_days: int = 365
    #: Gmail's per-user quota (units per minute) the sync stays under, shared by all workers.
    gmail_quota_units_per_minute: int = 15_000
    #: Fernet keys, comma-separated, newest first: the first encrypts, all decrypt.
    encryption_keys: str | None = field(default=None, repr=False)
    #: Event webhooks to private, loopback, link-local, multicast or reserved addresses. None
    #: means "not in production" (see ``webhooks_allow_private``): local receivers work in
    #: development and tests, production refuses them unless this is set explicitly.
    webhook_allow_private_urls: bool | None = None
    #: Bound of one delivery's connect, and of each read of its answer (seconds).
    webhook_timeout_s: float = 10.0
    #: Delays before each retry of a failed delivery (seconds); then it is failed.
    webhook_retry_schedule_s: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    #: An endpoint whose attempts have failed without a success for this long is disabled.
    webhook_disable_after_s: float = 5 * 86400.0
    #: How often the sweep re-sends due deliveries whose message was lost.
    webhook_sweep_s: float = 10.0
    #: Events (with their deliveries and attempts) are deleted after this many days.
    webhook_retention_days: int = 30

    @property
    def stream_url(self) -> str:
        """Where Twilio streams a call's audio: the URL in the TwiML and the one it signs."""
        if self.media_stream_url:
            return self.media_stream_url
        base = self.public_base_url.rstrip("/")
        scheme, rest = base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/media"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def webhooks_allow_private(self) -> bool:
        if self.webhook_allow_private_urls is not None:
            return self.webhook_allow_private_urls
        return not self.is_production

    @property
    def queue_broker_url(self) -> str | None:
        """Where the messages go: ``BROKER_URL``, else ``REDIS_URL``."""
        return self.broker_url or self.redis_url

    @property
    def broker_kind(self) -> str:
        """``rabbitmq`` for an AMQP broker URL, else ``redis``."""
        url = self.queue_broker_url or ""
        return "rabbitmq" if url.startswith(AMQP_SCHEMES) else "redis"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed: how tests build their settings."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming the first bad one."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        app_env = reader.choice("APP_ENV", ENVIRONMENTS, "development")
        role = reader.choice("SERVICE_ROLE", ROLES, "cli")
        var_dir = Path(reader.text("SWITCHBOARD_VAR_DIR") or str(ROOT / "var"))
        default_format = "json" if app_env == "production" else "text"
        settings = cls(
            app_env=app_env,
            service_role=role,
            database_url=reader.text("DATABASE_URL") or f"sqlite:///{var_dir / 'switchboard.db'}",
            redis_url=reader.url("REDIS_URL", REDIS_SCHEMES),
            broker_url=reader.url("BROKER_URL", (*REDIS_SCHEMES, *AMQP_SCHEMES)),
            rabbitmq_management_url=reader.url("RABBITMQ_MANAGEMENT_URL", ("http", "https")),
            public_base_url=(reader.text("PUBLIC_BASE_URL") or cls.public_base_url).rstrip("/"),
            log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
            log_format=reader.choice("LOG_FORMAT", LOG_FORMATS, default_format),
            var_dir=var_dir,
            metrics_dir=Path(reader.text("METRICS_DIR") or str(var_dir / "metrics")),
            broker_check_timeout_s=reader.number("BROKER_CHECK_TIMEOUT_S", 0.5, 0.05, 1.0),
            database_check_timeout_s=reader.number("DATABASE_CHECK_TIMEOUT_S", 2, 0.1, 10),
            worker_heartbeat_interval_s=reader.number("WORKER_HEARTBEAT_INTERVAL_S", 5, 0.1, 300),
            worker_background_poll_ms=int(
                reader.number("WORKER_BACKGROUND_POLL_MS", 1000, 10, 60_000)
            ),
            worker_idle_block_ms=int(reader.number("WORKER_IDLE_BLOCK_MS", 2000, 10, 5000)),
            worker_heartbeat_ttl_s=reader.number("WORKER_HEARTBEAT_TTL_S", 20, 0.5, 3600),
            scheduler_tick_s=reader.number("SCHEDULER_TICK_S", 15, 0.1, 3600),
            scheduler_lock_ttl_s=reader.number("SCHEDULER_LOCK_TTL_S", 10, 0.5, 600),
            schedule_tick_s=reader.number("SCHEDULE_TICK_S", 60, 0.1, 3600),
            schedule_grace_s=reader.number("SCHEDULE_GRACE_S", 3600, 60, 86400),
            schedule_trigger_per_minute=int(
                reader.number("SCHEDULE_TRIGGER_PER_MINUTE", 6, 1, 10_000)
            ),
            background_job_stall_s=reader.number("BACKGROUND_JOB_STALL_S", 3600, 1, 7 * 86400),
            twilio_account_sid=reader.text("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=reader.text("TWILIO_AUTH_TOKEN"),
            twilio_api_base=reader.text("TWILIO_API_BASE"),
            twilio_from_number=reader.text("TWILIO_FROM_NUMBER") or cls.twilio_from_number,
            twilio_cps=reader.number("TWILIO_CPS", 1, 0.01, 1000),
            dialing_timeout_s=reader.number("DIALING_TIMEOUT_S", 60, 1, 3600),
            call_max_duration_s=reader.number("CALL_MAX_DURATION_S", 14400, 5, 86400),
            ring_timeout_s=int(reader.number("RING_TIMEOUT_S", 30, 15, 600)),
            recordings_dir=Path(reader.text("RECORDINGS_DIR") or str(var_dir / "recordings")),
            voice_agent=reader.text("VOICE_AGENT") or cls.voice_agent,
            media_stream_url=reader.text("MEDIA_STREAM_URL") or "",
            media_blocking_threads=int(reader.number("MEDIA_BLOCKING_THREADS", 4, 1, 64)),
            realtime_api_base=(reader.text("REALTIME_API_BASE") or cls.realtime_api_base).rstrip(
                "/"
            ),
            model_api_base=(reader.text("MODEL_API_BASE") or cls.model_api_base).rstrip("/"),
            openai_api_key=reader.text("OPENAI_API_KEY"),
            realtime_model=reader.text("REALTIME_MODEL") or cls.realtime_model,
            google_client_id=reader.text("GOOGLE_CLIENT_ID"),
            google_client_secret=reader.text("GOOGLE_CLIENT_SECRET"),
            google_auth_uri=reader.text("GOOGLE_AUTH_URI") or cls.google_auth_uri,
            google_token_uri=reader.text("GOOGLE_TOKEN_URI") or cls.google_token_uri,
            gmail_api_endpoint=reader.text("GMAIL_API_ENDPOINT"),
            gmail_receipts_query=reader.text("GMAIL_RECEIPTS_QUERY") or cls.gmail_receipts_query,
            gmail_lookback_days=int(reader.number("GMAIL_LOOKBACK_DAYS", 365, 1, 3650)),
            gmail_quota_units_per_minute=int(
                reader.number("GMAIL_QUOTA_UNITS_PER_MINUTE", 15_000, 10, 1_000_000)
            ),
            encryption_keys=reader.text("ENCRYPTION_KEYS"),
            webhook_allow_private_urls=reader.flag("WEBHOOK_ALLOW_PRIVATE_URLS"),
            webhook_timeout_s=reader.number("WEBHOOK_TIMEOUT_S", 10, 0.1, 20),
            webhook_retry_schedule_s=reader.numbers(
                "WEBHOOK_RETRY_SCHEDULE_S", cls.webhook_retry_schedule_s, 0.01, 7 * 86400
            ),
            webhook_disable_after_s=reader.number(
                "WEBHOOK_DISABLE_AFTER_S", 5 * 86400, 1, 90 * 86400
            ),
            webhook_sweep_s=reader.number("WEBHOOK_SWEEP_S", 10, 0.1, 3600),
            webhook_retention_days=int(reader.number("WEBHOOK_RETENTION_DAYS", 30, 1, 3650)),
        )
        if not re.fullmatch(r"[\w.]+:\w+", settings.voice_agent):
            raise ConfigError("VOICE_AGENT must be a dotted module path and a class, module:Class")
        if settings.encryption_keys:
            parse_keys(settings.encryption_keys)
        if not settings.public_base_url.startswith(("http://", "https://")):
            raise ConfigError("PUBLIC_BASE_URL must start with http:// or https://")
        if settings.media_stream_url and not settings.media_stream_url.startswith(
            ("ws://", "wss://")
        ):
            raise ConfigError("MEDIA_STREAM_URL must start with ws:// or wss://")
        if not settings.realtime_api_base.startswith(("ws://", "wss://")):
            raise ConfigError("REALTIME_API_BASE must start with ws:// or wss://")
        if settings.is_production:
            missing = [name for name in PRODUCTION_REQUIRED[role] if not reader.text(name)]
            if missing:
                raise ConfigError(
                    f"APP_ENV=production and SERVICE_ROLE={role} require "
                    f"{', '.join(missing)} to be set"
                )
        return settings


class _Reader:
    """Reads typed values from an environment mapping with errors that name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is not None and not value.startswith(schemes):
            raise ConfigError(f"{name} must start with one of: {', '.join(schemes)}")
        if value is not None and value.startswith("redis+sentinel://"):
            from libs.common.redis_client import parse_sentinel_url  # it imports nothing here

            try:
                parse_sentinel_url(value)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str, upper: bool = False) -> str:
        value = self.text(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
        return value

    def flag(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean (true or false)")

    def numbers(
        self, name: str, default: tuple[float, ...], low: float, high: float
    ) -> tuple[float, ...]:
        """A comma-separated list of numbers, each between ``low`` and ``high``."""
        raw = self.text(name)
        if raw is None:
            return default
        values = []
        for part in raw.split(","):
            try:
                value = float(part)
            except ValueError:
                raise ConfigError(f"{name}: {part.strip()!r} is not a number") from None
            if not low <= value <= high:
                raise ConfigError(f"{name}: {part.strip()} must be between {low:g} and {high:g}")
            values.append(value)
        if not 1 <= len(values) <= 20:
            raise ConfigError(f"{name} must list 1 to 20 delays")
        return tuple(values)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.text(name)
        if raw is None:
            return float(default)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={raw} must be between {low:g} and {high:g}")
        return value


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once. Entry points call this; libraries take settings."""
    return Settings.from_env()
