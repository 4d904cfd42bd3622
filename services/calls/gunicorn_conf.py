"""Gunicorn settings for the calls service (run: gunicorn -c services/calls/gunicorn_conf.py)."""

import os

from libs.web import gunicorn_hooks

_metrics_dir = gunicorn_hooks.prepare_metrics_env("calls")

wsgi_app = "services.calls.wsgi:app"
bind = os.environ.get("CALLS_BIND", "0.0.0.0:5050")
# Twilio retries a webhook that takes over 15 s; answers must stay in milliseconds.
workers = int(os.environ.get("CALLS_WORKERS", "2"))
worker_class = "gthread"
# gthread: the webhooks only (media streams are the media server's, on asyncio). About one thread
# per pooled database connection (WEB_POOL_SIZE in libs/web/app_base.py): a thread beyond those
# waits for a connection anyway, and under load every extra runnable thread costs each request
# CPU in GIL hand-offs. Status callbacks at saturation, alternating runs at load average 6 to 8:
# 2.2 to 2.8 ms of the calls service's CPU each with 16 threads, 3.4 to 3.7 ms with 64.
threads = int(os.environ.get("CALLS_THREADS", "16"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
# Gunicorn 27 opens a control socket at one per-user path; two masters on a host would collide.
control_socket_disable = True
on_starting = gunicorn_hooks.make_on_starting(_metrics_dir)
child_exit = gunicorn_hooks.child_exit
post_worker_init = gunicorn_hooks.post_worker_init
