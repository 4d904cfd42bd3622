"""The api service: JSON REST for the SPA and operators, under /api."""

from __future__ import annotations

import dramatiq
from flask import Blueprint, Flask

from libs.common.settings import Settings, get_settings
from libs.queueops.broker_adapter import adapter_for
from libs.web import health
from libs.web.app_base import create_base_app
from services.api import auth
from services.api.account.routes import blueprint as account_blueprint
from services.api.admin.routes import blueprint as admin_blueprint
from services.api.agent.routes import blueprint as agent_blueprint
from services.api.analytics.routes import blueprint as analytics_blueprint
from services.api.calls.routes import blueprint as calls_blueprint
from services.api.dispositions.routes import blueprint as dispositions_blueprint
from services.api.gmail.routes import blueprint as gmail_blueprint
from services.api.jobs.routes import blueprint as jobs_blueprint
from services.api.leads.routes import blueprint as leads_blueprint
from services.api.openapi import openapi_document
from services.api.queue_metrics import QueueDepthCollector
from services.api.receipts.routes import blueprint as receipts_blueprint
from services.api.recordings.routes import blueprint as recordings_blueprint
from services.api.runs.routes import blueprint as runs_blueprint
from services.api.runs.voicemail import blueprint as run_voicemail_blueprint
from services.api.schedules.routes import blueprint as schedules_blueprint
from services.api.schemas import Health
from services.api.spec import answers, api, read_json_body
from services.api.system.routes import blueprint as system_blueprint
from services.api.webhooks.routes import blueprint as webhooks_blueprint

#: Bound of each broker wait during a metrics scrape.
SCRAPE_TIMEOUT_S = 0.5


def create_app(settings: Settings | None = None, broker: dramatiq.Broker | None = None) -> Flask:
    settings = settings or get_settings()
    app = create_base_app(__name__, "api", settings, broker)
    if settings.queue_broker_url:
        # Queue depth is read from the broker at scrape time, here only: one report per queue.
        adapter = adapter_for(settings, timeout_s=SCRAPE_TIMEOUT_S)
        app.extensions["metrics_collectors"] = [QueueDepthCollector(adapter)]

    blueprint = Blueprint("api", __name__, url_prefix="/api")
    blueprint.before_request(auth.authenticate)
    blueprint.before_request(read_json_body)
    blueprint.add_url_rule("/openapi.json", "openapi", openapi_document)
    # nginx sends /api/* here; health under /api too so it can be probed through the proxy.
    alive = answers({200: Health}, auth="public")
    ready = answers({200: Health, 503: Health}, auth="public")
    blueprint.add_url_rule("/healthz", "healthz", api.validate(resp=alive)(health.healthz))
    blueprint.add_url_rule("/readyz", "readyz", api.validate(resp=ready)(health.readyz))
    for child in (
        account_blueprint,
        jobs_blueprint,
        system_blueprint,
        leads_blueprint,
        runs_blueprint,
        run_voicemail_blueprint,
        schedules_blueprint,
        calls_blueprint,
        dispositions_blueprint,
        recordings_blueprint,
        analytics_blueprint,
        agent_blueprint,
        gmail_blueprint,
        receipts_blueprint,
        webhooks_blueprint,
        admin_blueprint,
    ):
        blueprint.register_blueprint(child)
    app.register_blueprint(blueprint)
    return app
