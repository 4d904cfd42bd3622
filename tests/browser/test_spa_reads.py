"""The check behind "the console reads only what the schema documents" (spa_reads.py), on
the api's real document: documented reads pass, and a field the schema lacks is caught."""

from flask.testing import FlaskClient

from tests.browser.spa_reads import undocumented


def test_documented_reads_pass_and_an_undocumented_field_is_caught(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").json
    documented = [
        "GET /api/runs 200 .items",
        "GET /api/runs 200 .items[].progress.by_status.completed",  # a dict's keys
        "GET /api/runs 200 .items[].actions",
        "POST /api/runs/12/start 409 .error.message",
        "GET /api/me 200 .business.name",  # through anyOf (business or null)
        "POST /api/receipts/sync 409 .job.progress.percent",  # through the 409's anyOf
    ]
    assert undocumented(document, documented) == []
    assert undocumented(document, ["GET /api/runs 200 .items[].progress.eta"]) == [
        "GET /api/runs 200 .items[].progress.eta: 'eta' is not documented"
    ]
    assert undocumented(document, ["GET /api/runs/1 418 .x"]) == [
        "GET /api/runs/1 418 .x: no documented JSON answer"
    ]
