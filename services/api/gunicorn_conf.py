"""Gunicorn settings for the api service (run: gunicorn -c services/api/gunicorn_conf.py)."""

import os

from libs.web import gunicorn_hooks

_metrics_dir = gunicorn_hooks.prepare_metrics_env("api")

wsgi_app = "services.api.wsgi:app"
bind = os.environ.get("API_BIND", "0.0.0.0:5000")
# Short JSON requests: a few processes with threads each; DB and Redis calls release the GIL.
workers = int(os.environ.get("API_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("API_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # request metrics and logs come from the app, with request ids
# Gunicorn 27 opens a control socket at one per-user path; two masters on a host would collide.
control_socket_disable = True
on_starting = gunicorn_hooks.make_on_starting(_metrics_dir)
child_exit = gunicorn_hooks.child_exit
post_worker_init = gunicorn_hooks.post_worker_init
