"""`switchboard run`: the whole system on one machine with embedded defaults."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click
import requests

from devtools.embedded_redis import redis_server_argv, wait_until_ready
from libs.common import migrate
from libs.common.settings import ROOT, Settings
from libs.common.supervisor import Supervisor


class _StopRequested(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _StopRequested


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--api-port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--calls-port", default=5050, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--media-port",
    default=5060,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The calls service's media server (Twilio Media Streams, the voice agents).",
)
@click.option(
    "--worker-metrics-port", default=9191, show_default=True, type=click.IntRange(1, 65535)
)
@click.option(
    "--scheduler-metrics-port", default=9192, show_default=True, type=click.IntRange(1, 65535)
)
@click.option(
    "--console-port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The console (the SPA, with /api/ passed to the api) as nginx serves it in production.",
)
@click.option("--worker-processes", default=1, show_default=True, type=click.IntRange(1, 16))
@click.option(
    "--simulator-port",
    default=5080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Twilio simulator port (started when no Twilio credentials are set).",
)
@click.option(
    "--gmail-simulator-port",
    default=5090,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Gmail simulator port (started when GOOGLE_CLIENT_ID is unset).",
)
@click.option(
    "--realtime-simulator-port",
    default=5070,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Realtime model simulator port (started when OPENAI_API_KEY is unset).",
)
@click.pass_obj
def run(
    settings: Settings,
    host: str,
    api_port: int,
    calls_port: int,
    media_port: int,
    worker_metrics_port: int,
    scheduler_metrics_port: int,
    console_port: int,
    worker_processes: int,
    simulator_port: int,
    gmail_simulator_port: int,
    realtime_simulator_port: int,
) -> None:
    """Run api, calls, a worker and the scheduler; Ctrl-C stops them all."""
    if settings.is_production:
        raise click.UsageError("`switchboard run` is the local stack; production uses compose")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url)
    supervisor = Supervisor()
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    env = dict(os.environ, PYTHONUNBUFFERED="1", DATABASE_URL=settings.database_url)
    env["SWITCHBOARD_VAR_DIR"] = str(settings.var_dir)
    # Locally there is no nginx in front: Twilio (the simulator) calls the calls service directly.
    env.setdefault("PUBLIC_BASE_URL", f"http://{host}:{calls_port}")
    # ... and streams to the media server directly (nginx routes /ws/ there in production).
    env.setdefault("MEDIA_STREAM_URL", f"ws://{host}:{media_port}/ws/media")
    try:
        redis_note = settings.redis_url
        if not settings.redis_url:
            env["REDIS_URL"], redis_note = _start_embedded_redis(supervisor, settings.var_dir, env)
        python = sys.executable
        twilio_note = "Twilio credentials from the environment"
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            twilio_note = _start_twilio_simulator(supervisor, env, simulator_port)
        gmail_note = "Google OAuth client from the environment"
        if not settings.google_client_id:
            gmail_note = _start_gmail_simulator(supervisor, env, gmail_simulator_port)
        model_note = "OPENAI_API_KEY from the environment"
        if not settings.openai_api_key:
            model_note = _start_realtime_simulator(supervisor, env, realtime_simulator_port)
        api_env = dict(env, SERVICE_ROLE="api", API_BIND=f"{host}:{api_port}")
        if not os.environ.get("PUBLIC_BASE_URL"):
            # Google's redirect to /api/gmail/callback (the api's only use of the public URL)
            # must reach the api, not calls: through the console, like nginx in production.
            api_env["PUBLIC_BASE_URL"] = _api_public_url(host, api_port, console_port)
        supervisor.start(
            "api",
            [python, "-m", "gunicorn", "-c", "services/api/gunicorn_conf.py"],
            api_env,
            cwd=ROOT,
        )
        supervisor.start(
            "calls",
            [python, "-m", "gunicorn", "-c", "services/calls/gunicorn_conf.py"],
            dict(env, SERVICE_ROLE="calls", CALLS_BIND=f"{host}:{calls_port}"),
            cwd=ROOT,
        )
        supervisor.start(
            "media",
            [python, "-m", "gunicorn", "-c", "services/calls/media/gunicorn_conf.py"],
            dict(env, SERVICE_ROLE="calls", CALLS_MEDIA_BIND=f"{host}:{media_port}"),
            cwd=ROOT,
        )
        cli = [python, "-m", "libs.cli"]
        # No --queues: the worker consumes every queue of contracts.QUEUES, receipts included.
        supervisor.start(
            "worker",
            [*cli, "worker", "--processes", str(worker_processes), "--threads", "4",
             "--metrics-port", str(worker_metrics_port)],
            env,
            cwd=ROOT,
        )  # fmt: skip
        supervisor.start(
            "scheduler",
            [*cli, "scheduler", "--metrics-port", str(scheduler_metrics_port)],
            env,
            cwd=ROOT,
        )
        base = f"http://{host}:"
        console_note = _start_console(supervisor, env, host, console_port, f"{base}{api_port}")
        _wait_ready(supervisor, [f"{base}{api_port}/readyz", f"{base}{calls_port}/readyz",
                                 f"{base}{media_port}/readyz"])  # fmt: skip
        click.echo(
            "\nSwitchboard is running.\n"
            f"  console    {console_note}\n"
            f"  api        {base}{api_port}/api   (readiness {base}{api_port}/readyz)\n"
            f"  calls      {base}{calls_port}      (readiness {base}{calls_port}/readyz)\n"
            f"  media      {env['MEDIA_STREAM_URL']}   (readiness {base}{media_port}/readyz)\n"
            f"  metrics    {base}{api_port}/metrics  {base}{calls_port}/metrics  "
            f"{base}{worker_metrics_port}/metrics  {base}{scheduler_metrics_port}/metrics\n"
            f"  database   {settings.database_url}\n"
            f"  redis      {redis_note}\n"
            f"  twilio     {twilio_note}\n"
            f"  gmail      {gmail_note}\n"
            f"  model      {model_note}\n"
            "Create a business and a token in another terminal:\n"
            "  .venv/bin/switchboard business create --name 'Acme'\n"
            "  .venv/bin/switchboard token create --business-id 1\n"
            "Press Ctrl-C to stop.",
            err=False,
        )
        while True:
            exited = supervisor.first_exited()
            if exited is not None:
                click.echo(
                    f"{exited.name} exited with code {exited.process.returncode}; stopping",
                    err=True,
                )
                raise SystemExit(1)
            time.sleep(0.5)
    except _StopRequested:
        click.echo("\nstopping…", err=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_all()
        click.echo("stopped", err=True)


def _start_embedded_redis(
    supervisor: Supervisor, var_dir: Path, env: dict[str, str]
) -> tuple[str, str]:
    data_dir = var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    socket_path.unlink(missing_ok=True)
    supervisor.start("redis", redis_server_argv(data_dir, socket_path), env)
    wait_until_ready(socket_path)
    url = f"unix://{socket_path}"
    return url, f"embedded ({url})"


def _start_console(
    supervisor: Supervisor, env: dict[str, str], host: str, port: int, api_base: str
) -> str:
    """The SPA and /api/ on one origin (devtools/dev_console.py), like nginx in production."""
    from devtools.dev_console import HTML_DIR

    if not (HTML_DIR / "index.html").exists():
        return f"not served: {HTML_DIR}/index.html is missing"
    supervisor.start(
        "console",
        [sys.executable, "-m", "devtools.dev_console", "--host", host, "--port", str(port),
         "--api", api_base],
        env,
        cwd=ROOT,
    )  # fmt: skip
    url = f"http://{host}:{port}/"
    _wait_ready(supervisor, [url])
    return f"{url}   (sign in with a token from `switchboard token create`)"


def _start_twilio_simulator(supervisor: Supervisor, env: dict[str, str], port: int) -> str:
    """No Twilio credentials: calls go to the local simulator, through the same SDK code."""
    from simulators.twilio.__main__ import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    base = f"http://127.0.0.1:{port}"
    env.update(
        TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        TWILIO_API_BASE=base,
    )
    supervisor.start(
        "twilio-simulator",
        [sys.executable, "-m", "simulators.twilio", "--port", str(port)],
        env,
        cwd=ROOT,
    )
    _wait_ready(supervisor, [f"{base}/_sim/healthz"])
    return f"simulator at {base} (ledger: {base}/_sim/ledger)"


def _start_realtime_simulator(supervisor: Supervisor, env: dict[str, str], port: int) -> str:
    """No model credentials: realtime and cascaded agents talk to the local simulator, through
    the same client code production uses (the OpenAI wire formats)."""
    from simulators.realtime.__main__ import DEFAULT_API_KEY

    base = f"http://127.0.0.1:{port}"
    env.update(
        OPENAI_API_KEY=DEFAULT_API_KEY,
        REALTIME_API_BASE=f"ws://127.0.0.1:{port}/v1",
        MODEL_API_BASE=f"http://127.0.0.1:{port}/v1",
    )  # the cascaded pipeline's too
    supervisor.start(
        "realtime-simulator",
        [sys.executable, "-m", "simulators.realtime", "--port", str(port)],
        env,
        cwd=ROOT,
    )
    _wait_ready(supervisor, [f"{base}/_sim/healthz"])
    return f"realtime simulator at ws://127.0.0.1:{port}/v1 (no OPENAI_API_KEY set)"


def _api_public_url(host: str, api_port: int, console_port: int) -> str:
    """The console's origin when it serves the SPA (the browser then lands on its /receipts
    page after a Gmail consent), else the api's own."""
    from devtools.dev_console import HTML_DIR

    if (HTML_DIR / "index.html").exists():
        return f"http://{host}:{console_port}"
    return f"http://{host}:{api_port}"


def _start_gmail_simulator(supervisor: Supervisor, env: dict[str, str], port: int) -> str:
    """No Google OAuth client: consent, tokens and the Gmail API come from the local simulator,
    through the same google-api-python-client code paths production uses."""
    from simulators.gmail.__main__ import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    from simulators.gmail.oauth import DEFAULT_ACCOUNT

    base = f"http://127.0.0.1:{port}"
    env.update(
        GOOGLE_CLIENT_ID=DEFAULT_CLIENT_ID,
        GOOGLE_CLIENT_SECRET=DEFAULT_CLIENT_SECRET,
        GOOGLE_AUTH_URI=f"{base}/o/oauth2/v2/auth",
        GOOGLE_TOKEN_URI=f"{base}/token",
        GMAIL_API_ENDPOINT=base,
    )
    supervisor.start(
        "gmail-simulator",
        [sys.executable, "-m", "simulators.gmail", "--port", str(port)],
        env,
        cwd=ROOT,
    )
    _wait_ready(supervisor, [f"{base}/_sim/healthz"])
    return f"simulator at {base} (consent approves at once, as {DEFAULT_ACCOUNT})"


def _wait_ready(supervisor: Supervisor, urls: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        exited = supervisor.first_exited()
        if exited is not None:
            raise click.ClickException(f"{exited.name} exited during start-up; see its log above")
        try:
            if requests.get(pending[0], timeout=2).status_code == 200:
                pending.pop(0)
                continue
        except requests.RequestException:
            pass
        time.sleep(0.2)
    if pending:
        raise click.ClickException(f"not ready after {timeout_s:g} s: {', '.join(pending)}")
