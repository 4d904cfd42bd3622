"""The console (deploy/nginx/html) in headless Chromium, through the real nginx config in front
of real api, calls, worker and scheduler processes and the Twilio simulator, on PostgreSQL and
Redis: what a person does, with screenshots (desktop and phone widths) kept as artifacts."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from sqlalchemy import select

from libs.common import repositories
from libs.common.audio import wav
from libs.common.contracts import RECORDINGS_PROCESS
from libs.common.db import Database
from libs.common.models import (
    BackgroundJob,
    Call,
    GmailConnection,
    JobStatus,
    TokenRole,
    utcnow,
)
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from tests.browser.spa_reads import RECORDER, undocumented
from tests.conftest import empty_database
from tests.receipt_factories import make_receipts
from tests.support.browser import chromium_executable, require_playwright
from tests.support.nginx import nginx_binary, render
from tests.support.processes import running
from tests.support.services import free_port
from tests.support.stack import Business, Stack, campaign_stack, make_business

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Long enough for a 12-lead run at 3 concurrent calls on a 2-core machine shared with others.
RUN_TIMEOUT_MS = 120_000
BUSINESS_403 = "This token is a business token; operator pages need an operator token."
OPERATOR_403 = "This token is an operator token; business pages need a business token."


@dataclass
class Console:
    url: str
    stack: Stack
    redis_url: str

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.request(method, f"{self.url}/api{path}", headers=headers, timeout=10,
                                **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    """Module-wide: emptied before the stack starts and after it stops, never under it."""
    database = Database(database_url)
    empty_database(database)
    yield database
    empty_database(database)
    database.dispose()


@pytest.fixture(scope="module")
def console(
    db: Database, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    chromium_executable()
    require_playwright()
    nginx = nginx_binary()  # skip (fail in CI) before starting anything
    redis.Redis.from_url(redis_url).flushdb()
    log_dir = tmp_path_factory.mktemp("browser")
    with campaign_stack(database_url, redis_url, log_dir, workers=1) as stack:
        proxy_dir = log_dir / "proxy"
        proxy_dir.mkdir()
        http = free_port()
        upstreams = {name: urlsplit(url).port or 0 for name, url in
                     (("api", stack.api), ("calls", stack.calls))}  # fmt: skip
        conf = render(proxy_dir, upstreams, http, free_port())
        public = f"http://127.0.0.1:{http}"
        argv = [nginx, "-c", str(conf), "-p", str(proxy_dir), "-g", "daemon off;"]
        with running(argv, stack.env, log_dir / "nginx.log", f"{public}/api/healthz"):
            yield Console(public, stack, redis_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium_executable()
    require_playwright()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable())
        yield launched
        launched.close()


class Tab:
    """A browser tab that records what must never happen: uncaught errors, CSP violations."""

    def __init__(self, browser: Browser, base: str, artifacts: Path, viewport: dict[str, int],
                 prefix: str) -> None:  # fmt: skip
        phone = viewport["width"] < 600
        self.context = browser.new_context(
            viewport=viewport, device_scale_factor=2 if phone else 1, is_mobile=phone,
            has_touch=phone,
        )  # fmt: skip
        self.context.set_default_timeout(20_000)
        # Every field the console reads from an API answer, across page loads (api_reads.js).
        self.reads: set[str] = set()
        self.context.expose_function("__apiRead", lambda read: self.reads.add(read))
        self.context.add_init_script(path=str(RECORDER))
        self.page: Page = self.context.new_page()
        self.base, self.artifacts, self.prefix = base, artifacts, prefix
        self.problems: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # 4xx answers are logged by Chromium as errors and are expected here; a blocked script
        # or style would mean the console breaks under the production CSP.
        if "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base}{path}")

    def shot(self, name: str) -> Path:
        path = self.artifacts / f"{self.prefix}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self, token: str, path: str = "/") -> None:
        from playwright.sync_api import expect

        self.goto(path)
        expect(self.page).to_have_url(re.compile(r"/signin"))
        self.page.locator("input[name=token]").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#whoami")).to_contain_text("Signed in")

    def sign_out(self) -> None:
        from playwright.sync_api import expect

        self.page.get_by_role("button", name="Sign out").click()
        expect(self.page).to_have_url(re.compile(r"/signin"))

    def close(self) -> None:
        self.context.close()

    def assert_reads_documented(self, console: Console, *expected: str) -> None:
        """Every field the console read is in the answer's schema; ``expected`` reads (the
        ones a test relies on) were recorded, so the recorder is known to be listening."""
        document = requests.get(f"{console.url}/api/openapi.json", timeout=10).json()
        assert undocumented(document, sorted(self.reads)) == []
        fields = {read.split(" ", 3)[3] for read in self.reads}
        assert set(expected) <= fields, sorted(fields)


def operator_token(db: Database) -> str:
    with db.session() as session:
        _, token = repositories.create_token(session, TokenRole.OPERATOR, None, "browser test")
        session.commit()
    return token


def leads_csv(count: int) -> bytes:
    rows = ["phone,name,timezone"]
    rows += [f"+1415555{2000 + i:04d},Browser lead {i},America/Los_Angeles" for i in range(count)]
    rows.append("not a phone,Broken row,UTC")  # reported with its line number, not imported
    return ("\n".join(rows) + "\n").encode()


def fail_a_recording_job(console: Console, db: Database, business: Business) -> tuple[str, Path]:
    """An inbound call whose recording is not where the worker reads it (say, the recordings
    volume was not shared with the workers): recordings.process raises until the file exists.
    Sent without a retry budget so it is dead-lettered at once instead of after a minute of
    backoff. Returns the call sid and where the file belongs."""
    sid = "CA" + uuid.uuid4().hex
    relative = f"{business.id}/{sid}.wav"
    with db.session() as session:
        session.add(Call(business_id=business.id, direction="inbound", to_number="+14155550000",
                         from_number="+14155559999", provider_call_sid=sid, status="completed",
                         recording_path=relative))  # fmt: skip
        session.commit()
    settings = Settings(app_env="test", redis_url=console.redis_url)
    broker = build_broker(settings, worker=False)
    message = RECORDINGS_PROCESS.message(call_sid=sid)
    message.options["max_retries"] = 0
    broker.enqueue(message)
    broker.close()
    return sid, Path(console.stack.env["SWITCHBOARD_VAR_DIR"]) / "recordings" / relative


def wait_for(predicate: Any, what: str, timeout_s: float = 30) -> Any:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_business_and_operator_flows(
    console: Console, db: Database, browser: Browser, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    console.stack.sim.scenario(default={"ring_s": 0.2, "talk_s": 0.6})
    business = make_business(db, "Browser Bakery", limit=3)
    operator = operator_token(db)
    tab = Tab(browser, console.url, artifacts, DESKTOP, "desktop")
    page = tab.page

    # nginx serves the console under the production CSP, revalidated on every load.
    served = requests.get(f"{console.url}/runs/1", timeout=5)
    assert "<h1>Switchboard</h1>" in served.text
    assert served.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert served.headers["Cache-Control"] == "no-cache"

    # A wrong token is refused, and the page says so.
    tab.goto("/")
    page.locator("input[name=token]").fill("sb_" + "x" * 40)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#banner")).to_contain_text("Sign-in refused: the token is unknown")
    tab.shot("00-signin-refused")

    # Sign in: / sends a signed-out visitor to /signin, then back to the business's start page.
    tab.sign_in(business.token)
    expect(page).to_have_url(re.compile(r"/leads$"))
    expect(page.locator("#whoami")).to_contain_text("Browser Bakery (business token)")

    # Import leads from a CSV file: the progress bar follows the BackgroundJob to 100 %.
    page.locator("input[name=file]").set_input_files(
        files=[{"name": "leads.csv", "mimeType": "text/csv", "buffer": leads_csv(12)}]
    )
    page.get_by_role("button", name="Import", exact=True).click()
    job = page.locator("#import-job .job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(job.locator(".progress")).to_have_attribute("data-percent", "100")
    expect(job).to_contain_text("12 created, 0 updated, 1 refused, of 13 rows")
    expect(job.locator("table tbody tr")).to_contain_text("14")  # the line, header included
    expect(job.locator("table")).to_contain_text("is not a phone number")
    expect(page.locator("#leads-list")).to_contain_text("(12 in all)")
    tab.shot("01-leads-imported")

    # Create a run over every lead and start it; its bar reaches 100 % while the page polls.
    page.get_by_role("link", name="Runs").click()
    expect(page).to_have_url(re.compile(r"/runs$"))
    page.locator("input[name=name]").fill("Spring promo")
    page.locator("input[name=window_start]").fill("00:00")
    page.locator("input[name=window_end]").fill("23:59")
    page.get_by_role("button", name="Create run").click()
    expect(page.locator("#banner")).to_contain_text("created with 12 leads")
    row = page.locator("#runs-list tr[data-run-id]").first
    expect(row).to_have_attribute("data-status", "draft")
    run_id = row.get_attribute("data-run-id")
    page.get_by_role("button", name=f"Start run {run_id}").click()
    row = page.locator(f'#runs-list tr[data-run-id="{run_id}"]')
    expect(row).to_have_attribute("data-status", re.compile("running|completed"))
    tab.shot("02-run-started")
    expect(row.locator(".progress")).to_have_attribute("data-percent", "100",
                                                       timeout=RUN_TIMEOUT_MS)  # fmt: skip
    expect(row).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(row).to_contain_text("12 of 12 leads done")
    tab.shot("03-run-completed")

    # The run's calls, through the link on its name.
    row.get_by_role("link", name="Spring promo").click()
    expect(page).to_have_url(re.compile(rf"/calls\?run_id={run_id}$"))
    expect(page.locator("#calls-list")).to_contain_text("(12 in all)")
    expect(page.locator("#calls-list tbody")).to_contain_text("completed")
    tab.shot("04-calls")

    # Schedules and receipts list theirs (no Gmail inbox connected: the sync explains it).
    lead_id = console.api("GET", "/leads", business.token).json()["items"][0]["id"]
    created = console.api("POST", "/schedules", business.token,
                          json={"lead_id": lead_id, "local_time": "07:45"})  # fmt: skip
    assert created.status_code == 201, created.text
    make_receipts(db, business.id)
    page.get_by_role("link", name="Schedules").click()
    expect(page.locator("#schedules-list")).to_contain_text("07:45")
    page.get_by_role("button", name=f"Occurrences of schedule {created.json()['id']}").click()
    expect(page.locator("#occurrences")).to_contain_text("It has not fired yet.")
    page.get_by_role("link", name="Receipts").click()
    expect(page.locator("#connections")).to_contain_text("No inbox is connected yet.")
    expect(page.locator("#receipts-list")).to_contain_text("Uber Eats")
    page.get_by_role("button", name="Sync now", exact=True).click()
    expect(page.locator("#banner")).to_contain_text("no Gmail inbox is connected")
    tab.shot("05-receipts")

    # A business token on an operator page: refused by the API (403), and the page says why.
    page.get_by_role("link", name="Failed jobs").click()
    expect(page.locator(".panel.forbidden")).to_contain_text(BUSINESS_403)
    expect(page.locator(".panel.forbidden")).to_contain_text("needs an operator token")
    tab.shot("06-business-on-operator-page")
    for path in ("/admin/failed", "/admin/queues", "/admin/workers"):
        assert console.api("GET", path, business.token).status_code == 403, path

    # The same pages at a phone's width: nothing wider than the screen.
    phone = Tab(browser, console.url, artifacts, PHONE, "phone")
    phone.sign_in(business.token, "/runs")
    expect(phone.page.locator(f'#runs-list tr[data-run-id="{run_id}"]')).to_contain_text(
        "12 of 12 leads done"
    )
    for path, name in (("/runs", "01-runs"), ("/leads", "02-leads"), ("/calls", "03-calls"),
                       ("/ops/queues", "04-business-on-operator-page")):  # fmt: skip
        phone.goto(path)
        phone.page.wait_for_load_state("networkidle")
        fits = phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{path} is wider than a phone screen"
        phone.shot(name)
    expect(phone.page.locator(".panel.forbidden")).to_contain_text(BUSINESS_403)
    assert phone.problems == [], phone.problems
    phone.close()

    # A job fails: its message is dead-lettered and listed by the operations API.
    sid, recording = fail_a_recording_job(console, db, business)
    failed = wait_for(
        lambda: [
            item
            for item in console.api("GET", "/admin/failed", operator).json()["items"]
            if item["kwargs"] == {"call_sid": sid}
        ],
        "the recording job to be dead-lettered",
    )[0]

    # The operator signs in, lands on the failed-jobs page, sees it and retries it, after the
    # cause (the missing file) is fixed.
    tab.sign_out()
    tab.sign_in(operator, "/ops/failed")
    expect(page).to_have_url(re.compile(r"/ops/failed$"))
    expect(page.locator("#whoami")).to_contain_text("operator token")
    failed_row = page.locator(f'tr[data-failed-id="{failed["id"]}"]')
    expect(failed_row).to_contain_text("recordings.process")
    expect(failed_row).to_contain_text(sid)
    tab.shot("07-failed-jobs")
    recording.parent.mkdir(parents=True, exist_ok=True)
    recording.write_bytes(wav.header(8000) + b"\xff" * 8000)
    page.get_by_role("button", name=f"Retry job {failed['id']}").click()
    expect(page.locator("#banner")).to_contain_text("sent back to its queue")
    expect(failed_row).to_have_count(0)
    tab.shot("08-failed-job-retried")

    def measured() -> str | None:
        with db.session() as session:
            return session.scalar(select(Call.recording_sha256).where(
                Call.provider_call_sid == sid))  # fmt: skip

    digest = wait_for(measured, "the retried job to measure the recording")
    assert digest == hashlib.sha256(recording.read_bytes()).hexdigest()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator(f'tr[data-failed-id="{failed["id"]}"]')).to_have_count(0)

    # The other operator pages; and an operator token on a business page is refused likewise.
    page.get_by_role("link", name="Queues").click()
    expect(page.locator("main table")).to_contain_text("recordings")
    tab.shot("09-queues")
    page.get_by_role("link", name="Workers").click()
    expect(page.locator("main table tbody tr").first).to_contain_text("recordings")
    tab.shot("10-workers")
    page.get_by_role("link", name="Leads").click()
    expect(page.locator(".panel.forbidden")).to_contain_text(OPERATOR_403)
    tab.shot("11-operator-on-business-page")

    assert tab.problems == [], tab.problems
    tab.assert_reads_documented(
        console, ".items[].actions", ".items[].progress.percent", ".items[].total_amount",
        ".items[].days", ".workers[].heartbeat_age_s", ".error.message", ".business.name",
    )  # fmt: skip
    tab.close()


def test_receipts_sync_states(
    console: Console, db: Database, browser: Browser, artifacts: Path
) -> None:
    """Pressing "Sync now" while a sync runs (409: the running job is followed to 100 %) and
    while the queue is down (503: said plainly). The 409 is the API's own; the broker outage is
    played by the browser (the API's 503 itself is tested in tests/api), Redis being shared."""
    from playwright.sync_api import Route, expect

    business = make_business(db, "Receipts Rex", limit=3)
    with db.session() as session:
        job = BackgroundJob(
            business_id=business.id,
            kind="receipts.sync",
            status=JobStatus.RUNNING,
            progress_done=3,
            progress_total=10,
        )
        session.add(job)
        session.flush()
        session.add(GmailConnection(business_id=business.id, email="books@rex.example",
                                    sync_job_id=job.id))  # fmt: skip
        session.commit()
        job_id = job.id
    tab = Tab(browser, console.url, artifacts, DESKTOP, "receipts")
    page = tab.page
    tab.sign_in(business.token, "/receipts")
    status = page.locator("#sync-status")
    # Started elsewhere (another tab, a schedule): shown as running when the page opens.
    expect(status).to_contain_text(f"is running (job {job_id})")
    page.get_by_role("button", name="Sync now", exact=True).click()
    expect(status).to_contain_text(f"A sync is already running (job {job_id}); following it.")
    expect(status.locator(".progress")).to_have_attribute("data-percent", "30")
    tab.shot("01-sync-already-running")
    with db.session() as session:
        running = session.get_one(BackgroundJob, job_id)
        running.status, running.progress_done, running.finished_at = (
            JobStatus.SUCCEEDED, 10, utcnow())  # fmt: skip
        session.commit()
    expect(status.locator(".progress")).to_have_attribute("data-percent", "100")
    expect(status.locator(".job")).to_have_attribute("data-status", "succeeded")
    tab.shot("02-sync-finished")

    def queue_down(route: Route) -> None:
        error = {"code": "queue_unavailable", "message": "the job queue is unreachable"}
        route.fulfill(status=503, json={"error": error}, headers={"Retry-After": "5"})

    page.route("**/api/receipts/sync", queue_down)
    page.get_by_role("button", name="Sync now", exact=True).click()
    expect(status).to_contain_text("The queue is unavailable, try again")
    expect(status.locator(".progress")).to_have_count(0)
    tab.shot("03-queue-unavailable")
    assert tab.problems == [], tab.problems
    tab.assert_reads_documented(console, ".job.progress.percent", ".items[].email")
    tab.close()


def test_webhook_endpoints_and_redelivery(
    console: Console, db: Database, browser: Browser, artifacts: Path
) -> None:
    """Register an endpoint (its secret shown once), watch deliveries fail at a broken
    receiver, disable it, fix the receiver, enable it, redeliver one and then every failed one;
    each event reaches the receiver once. A disabled endpoint's notice is shown."""
    from playwright.sync_api import expect
    from sqlalchemy import update

    from libs.common.models import WebhookEndpoint
    from tests.support.webhook_receiver import webhook_receiver

    business = make_business(db, "Hooked Bakery", limit=3)
    tab = Tab(browser, console.url, artifacts, DESKTOP, "webhooks")
    page = tab.page
    with webhook_receiver() as receiver:
        receiver.script.status = 500
        tab.sign_in(business.token, "/webhooks")
        page.locator("input[name=url]").fill(receiver.url)
        page.locator("input[name=description]").fill("Our CRM")
        page.get_by_role("button", name="Register endpoint").click()
        secret = page.locator("pre.secret")
        expect(secret).to_contain_text("whsec_")
        expect(page.locator("#webhook-secret")).to_contain_text("it is not shown again")
        endpoint_id = secret.get_attribute("data-endpoint-id")
        tab.shot("01-endpoint-registered")

        leads = [{"phone": "+14155556001"}, {"phone": "+14155556002"}]
        assert console.api("POST", "/leads/bulk", business.token, json={"leads": leads}).ok
        receiver.wait_for(lambda r: len({x.event_id for x in r.received()}) == 2,
                          what="both events attempted")  # fmt: skip
        log = page.locator("#deliveries")
        expect(log.locator("tr[data-delivery-id]")).to_have_count(2)
        expect(log.locator("tbody")).to_contain_text("HTTP 500")
        tab.shot("02-deliveries-failing")

        # Disabled: what was pending fails, ready to be redelivered.
        page.get_by_role("button", name=f"Disable endpoint {endpoint_id}").click()
        expect(log.locator('tr[data-status="failed"]')).to_have_count(2)
        receiver.script.status = 200
        page.get_by_role("button", name=f"Enable endpoint {endpoint_id}").click()
        expect(page.locator(f'tr[data-endpoint-id="{endpoint_id}"]')).to_have_attribute(
            "data-enabled", "true")  # fmt: skip

        first = log.locator("tr[data-delivery-id]").last  # newest first: the oldest is last
        first_id = first.get_attribute("data-delivery-id")
        page.get_by_role("button", name=f"Redeliver delivery {first_id}").click()
        expect(page.locator("#banner")).to_contain_text(f"Delivery {first_id} was sent again")
        expect(log.locator(f'tr[data-delivery-id="{first_id}"]')).to_have_attribute(
            "data-status", "succeeded", timeout=30_000)  # fmt: skip
        page.get_by_role(
            "button", name=f"Redeliver failed deliveries of endpoint {endpoint_id}"
        ).click()
        expect(page.locator("#banner")).to_contain_text("1 failed delivery was sent again")
        expect(log.locator('tr[data-status="succeeded"]')).to_have_count(2, timeout=30_000)
        tab.shot("03-redelivered")
        accepted = [r.event_id for r in receiver.accepted()]
        assert len(accepted) == len(set(accepted)) == 2, receiver.summary()

        page.get_by_role("button", name=f"Details of delivery {first_id}").click()
        details = page.locator("#delivery-details")
        expect(details).to_contain_text("http_error")
        expect(details).to_contain_text("succeeded")
        tab.shot("04-delivery-details")

    # An endpoint the worker disabled after days of failures: the page says so and why.
    reason = ("Disabled on 2026-01-05 10:00 UTC: every delivery attempt since 2025-12-31 "
              "09:00 UTC failed.")  # fmt: skip
    with db.session() as session:
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == int(endpoint_id or 0))
                        .values(enabled=False, disabled_reason=reason))  # fmt: skip
        session.commit()
    page.reload()
    expect(page.locator("#webhook-notices")).to_contain_text(
        f"Endpoint {endpoint_id} ({receiver.url}) is disabled. Disabled on 2026-01-05"
    )
    tab.shot("05-disabled-notice")
    assert tab.problems == [], tab.problems
    tab.close()


def test_voice_agent_settings_and_a_call_transcript(
    console: Console, db: Database, browser: Browser, artifacts: Path
) -> None:
    """A business chooses its voice agent (the key is write-only) and reads a call's
    transcript on the calls page."""
    from datetime import UTC, datetime

    from playwright.sync_api import expect

    from libs.common.models import AgentSettings, TranscriptLine

    business = make_business(db, "Voice Bakery", limit=1)
    with db.session() as session:
        call = Call(business_id=business.id, direction="inbound", to_number="+14155550000",
                    from_number="+14155550123", provider_call_sid="CA" + uuid.uuid4().hex,
                    status="completed", disposition="interested")  # fmt: skip
        session.add(call)
        session.flush()
        at = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
        session.add_all(
            [
                TranscriptLine(
                    call_id=call.id, seq=1, at=at, role="agent", text="Hello, Voice Bakery."
                ),
                TranscriptLine(
                    call_id=call.id, seq=2, at=at, role="caller", text="Two loaves, please."
                ),
            ]
        )
        session.commit()
    tab = Tab(browser, console.url, artifacts, DESKTOP, "desktop")
    page = tab.page
    tab.sign_in(business.token, "/agent")
    expect(page.locator("#agent-settings")).to_contain_text("Nothing chosen yet")
    page.locator("select[name=kind]").select_option("realtime")
    page.locator("input[name=voice]").fill("marin")
    page.locator("textarea[name=instructions]").fill("You take bread orders.")
    page.locator("input[name=transfer_number]").fill("(415) 555-0199")
    page.locator("input[name=tools][value=hang_up]").uncheck()
    page.locator("input[name=api_key]").fill("sk-browser-test-key-0123456789")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#banner")).to_contain_text("Voice agent saved.")
    expect(page.locator("input[name=api_key]")).to_have_attribute(
        "placeholder", "a key is set (type to replace it)"
    )
    assert "sk-browser-test-key" not in page.content()
    with db.session() as session:
        row = session.get_one(AgentSettings, business.id)
    assert (row.kind, row.voice, row.transfer_number) == ("realtime", "marin", "+14155550199")
    assert "hang_up" not in row.tools and row.api_key_encrypted
    tab.shot("20-voice-agent")

    page.get_by_role("link", name="Calls").click()
    page.locator("details.transcript-toggle summary").first.click()
    lines = page.locator(".transcript-lines li")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text("agent: Hello, Voice Bakery.")
    expect(lines.nth(1)).to_contain_text("caller: Two loaves, please.")
    expect(page.locator("#calls-list")).to_contain_text("interested")
    tab.shot("21-call-transcript")
    assert tab.problems == [], tab.problems
    tab.close()


def test_dispositions_and_an_operator_disposing_a_call(
    console: Console, db: Database, browser: Browser, artifacts: Path
) -> None:
    """A business adds dispositions (one set by rule on busy, one that retries), then an
    operator disposes a call from the calls page; the worker settles the call's outcome."""
    from playwright.sync_api import expect

    business = make_business(db, "Disposed Bakery", limit=1)
    with db.session() as session:
        call = Call(business_id=business.id, direction="outbound", to_number="+14155550777",
                    provider_call_sid="CA" + uuid.uuid4().hex, status="in-progress")  # fmt: skip
        session.add(call)
        session.commit()
        call_id = call.id
    tab = Tab(browser, console.url, artifacts, DESKTOP, "dispositions")
    page = tab.page
    tab.sign_in(business.token, "/dispositions")
    form = page.locator("#disposition-form")
    form.locator("input[name=code]").fill("busy_line")
    form.locator("input[name=outcome][value=busy]").check()
    page.get_by_role("button", name="Add disposition").click()
    expect(page.locator("#banner")).to_contain_text("Disposition busy_line added.")
    form.locator("input[name=code]").fill("callback")
    form.locator("input[name=label]").fill("Call back later")
    form.locator("select[name=action]").select_option("retry")
    form.locator("input[name=retry_after_h]").fill("2")
    page.get_by_role("button", name="Add disposition").click()
    listed = page.locator("#dispositions-list")
    expect(listed.locator("tr[data-code]")).to_have_count(2)
    expect(listed.locator('tr[data-code="callback"]')).to_contain_text("call again after 2 h")
    expect(listed.locator('tr[data-code="busy_line"]')).to_contain_text("busy")
    tab.shot("30-dispositions")

    page.get_by_role("link", name="Calls").click()
    menu = page.get_by_label(f"Disposition of call {call_id}")
    menu.select_option("callback")
    expect(page.locator(f'select[data-call-id="{call_id}"] + small')).to_have_text("operator")
    with db.session() as session:
        row = session.get_one(Call, call_id)
        assert (row.disposition, row.disposition_source) == ("callback", "operator")
    tab.shot("31-call-disposed")
    assert tab.problems == [], tab.problems
    tab.close()


def test_a_recorded_run_s_recording_downloads_and_retention(
    console: Console, db: Database, browser: Browser, artifacts: Path
) -> None:
    """A run created with "Record calls": the worker fetches its call's recording from the
    simulated Twilio; the calls page downloads the same bytes (SHA-256 as stored); the
    business sets how long recordings are kept."""
    from playwright.sync_api import expect

    console.stack.sim.scenario(default={"ring_s": 0.2, "talk_s": 0.6})
    business = make_business(db, "Recorded Bakery", limit=1)
    assert console.api("POST", "/leads", business.token, json={"phone": "+14155556101"}).ok
    tab = Tab(browser, console.url, artifacts, DESKTOP, "recordings")
    page = tab.page
    tab.sign_in(business.token, "/runs")
    page.locator("input[name=name]").fill("Recorded")
    page.locator("input[name=window_start]").fill("00:00")
    page.locator("input[name=window_end]").fill("23:59")
    page.locator("input[name=record]").check()
    # A stricter abandonment limit than the law's 3 %, and a longer failure window.
    page.locator("input[name=max_abandon_percent]").fill("2")
    page.locator("input[name=failure_window_min]").fill("30")
    page.get_by_role("button", name="Create run").click()
    row = page.locator("#runs-list tr[data-run-id]").first
    run_id = row.get_attribute("data-run-id")
    assert console.api("GET", f"/runs/{run_id}", business.token).json()["compliance"] == {
        "max_abandon_rate": 0.02, "max_failure_rate": 0.5, "failure_window_s": 1800,
        "min_failure_sample": 10}  # fmt: skip
    page.get_by_role("button", name=f"Start run {run_id}").click()
    expect(row).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)

    def stored() -> Call | None:
        with db.session() as session:
            call = session.scalar(select(Call).where(Call.business_id == business.id))
            return call if call is not None and call.recording_sha256 else None

    deadline = utcnow().timestamp() + 60
    while (call := stored()) is None and utcnow().timestamp() < deadline:
        page.wait_for_timeout(250)
    assert call is not None, "the recording was never stored"
    # The run's figures, from its rows: one attempt, answered, and its day's bar.
    page.get_by_role("link", name=f"Analytics of run {run_id}").click()
    totals = page.locator("#analytics-totals")
    expect(totals.locator('dd[data-figure="Attempts"]')).to_have_text("1")
    expect(totals.locator('dd[data-figure="Answer rate"]')).to_have_text("100.0 %")
    expect(page.locator('#day-chart rect[data-series="humans"]')).to_have_count(1)
    tab.shot("41-analytics")

    page.get_by_role("link", name="Calls").click()
    with page.expect_download() as downloading:
        page.get_by_role("button", name=f"Download the recording of call {call.id}").click()
    content = Path(downloading.value.path()).read_bytes()
    assert hashlib.sha256(content).hexdigest() == call.recording_sha256
    assert content[:4] == b"RIFF" and call.recording_channels == 2
    tab.shot("40-recording")

    page.locator("input[name=retention_days]").fill("30")
    page.get_by_role("button", name="Save retention").click()
    expect(page.locator("#banner")).to_contain_text("Recordings are kept 30 days.")
    assert console.api("GET", "/recordings/settings", business.token).json() == {
        "retention_days": 30
    }
    assert tab.problems == [], tab.problems
    tab.close()
