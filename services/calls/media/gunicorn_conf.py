"""Gunicorn settings for the calls service's media server (Twilio Media Streams on asyncio).

    gunicorn -c services/calls/media/gunicorn_conf.py

The webhooks keep services/calls/gunicorn_conf.py; `switchboard calls` runs both in the calls
container.
"""

import os

# The workers' event loop (aiohttp's GunicornUVLoopWebWorker imports it by name; imported here
# too so that a missing uvloop fails at boot, and so the image's dependency scan sees it).
import uvloop  # noqa: F401

from libs.web import gunicorn_hooks

_metrics_dir = gunicorn_hooks.prepare_metrics_env("calls-media")

wsgi_app = "services.calls.media.server:app_factory"
bind = os.environ.get("CALLS_MEDIA_BIND", "0.0.0.0:5060")
# One event loop per core: a stream is CPU-bound (parse, record, reply at 50 frames/s).
workers = int(os.environ.get("CALLS_MEDIA_WORKERS", "2"))
# uvloop: its loop and transports are C, which cut the CPU per frame by ~15 % (the bare echo
# the benchmark compares with runs under this same file, so it gets the same loop).
worker_class = "aiohttp.GunicornUVLoopWebWorker"
# Streams last as long as calls: no request timeout; a restart closes them (on_shutdown).
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
control_socket_disable = True
on_starting = gunicorn_hooks.make_on_starting(_metrics_dir)
child_exit = gunicorn_hooks.child_exit
post_worker_init = gunicorn_hooks.post_worker_init
