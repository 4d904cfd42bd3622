"""Dramatiq entry point: `dramatiq services.worker.main` (or `switchboard worker`).

The broker is built and made global first; the actors are declared on it afterwards.
"""

import os

from libs.common.logs import configure_logging
from libs.common.settings import get_settings
from libs.queueops import coalescing
from libs.queueops.broker import setup_broker, worker_metrics_env

settings = get_settings()
# Before anything imports prometheus_client: the worker's metrics are multiprocess files.
for _name, _value in worker_metrics_env(settings).items():
    os.environ.setdefault(_name, _value)
configure_logging(settings)
broker = setup_broker(settings, worker=True)
# dialer.dispatch and outcomes.price wait one at a time (libs/queueops/coalescing.py).
coalescing.install(settings.redis_url)

# Imported after the environment above: it loads prometheus_client.
from services.worker.actors import register_actors  # noqa: E402

actors = register_actors(broker)
