"""The benchmark report: it renders from the results in the repository, and its profiles
attribute samples where they belong. (The benchmarks themselves run with `make bench`.)"""

from pathlib import Path

import pytest

from bench import plots, report
from bench.profiling import by_package, by_step

STEPS = {
    "lock": ("_find_call", "services/calls/webhooks/status.py"),
    "checkout": ("_checkout", "sqlalchemy/pool/base.py"),
    "commit": ("commit", "sqlalchemy/orm/session.py"),
}
SITE = "/venv/lib/python3.11/site-packages"


def test_a_sample_counts_for_the_innermost_step_it_was_taken_in(tmp_path: Path) -> None:
    view = "status_callback (/app/services/calls/webhooks/status.py:90)"
    find = "_find_call (/app/services/calls/webhooks/status.py:140)"
    checkout = f"_ConnectionFairy._checkout ({SITE}/sqlalchemy/pool/base.py:1347)"
    send = f"send ({SITE}/psycopg/connection.py:479)"
    commit = f"Session.commit ({SITE}/sqlalchemy/orm/session.py:2141)"
    enqueue = f"enqueue ({SITE}/dramatiq/brokers/redis.py:150)"
    serve = "handle (/usr/lib/python3.11/site-packages/gunicorn/workers/gthread.py:280)"
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "\n".join(
            [
                f"{serve};{view};{find};{send} 3",  # in the lock's statement
                f"{serve};{view};{find};{checkout};{send} 5",  # the ping inside the lock
                f"{serve};{view};{commit};{enqueue} 2",
                f"{serve} 10",  # the server itself
                "garbage line without a count",
            ]
        )
    )
    assert by_step(raw, STEPS) == [("lock", 0.15), ("checkout", 0.25), ("commit", 0.1),
                                   ("other", 0.5)]  # fmt: skip
    assert dict(by_package(raw)) == {"psycopg": 0.4, "gunicorn": 0.5, "dramatiq": 0.1}


def test_no_profile_gives_no_shares(tmp_path: Path) -> None:
    assert by_step(tmp_path / "missing.txt", STEPS) == []
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert by_step(empty, STEPS) == []


def test_the_report_renders_every_section_from_the_committed_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "IMG", tmp_path / "img")  # not the repository's plots
    results = report.load_results()
    assert {s.name for s in report.SECTIONS} <= set(results), "a result file is missing"
    host = {
        "cores": 2, "cpu": "test cpu", "memory_gib": 1.0, "os": "Linux", "python": "3.11",
        "postgresql": "15", "redis": "7", "nginx": "1.22",
        "packages": {"dramatiq": "2", "rq": "2"}, "git_commit": "abc", "generated_at": "now",
    }  # fmt: skip
    text = report.render(results, host)
    for section in report.SECTIONS:
        assert f"`{results[section.name]['command']}`" in text
        if section.name in plots.PLOTS:
            assert (tmp_path / "img" / f"{section.name}.png").stat().st_size > 1000
    targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    # Every target of the issue is listed with a verdict.
    assert targets.count("**PASS**") + targets.count("**MISS**") >= 6


def test_histories_are_data_in_docs_and_every_row_fits_its_columns() -> None:
    from bench.support import HISTORY_DIR, history

    names = sorted(path.stem for path in HISTORY_DIR.glob("*.json"))
    assert names == ["queue_throughput", "webhook_ingest"]
    for name in names:
        data = history(name)
        assert data["rows"] and all(len(row) == len(data["columns"]) for row in data["rows"])
    # No benchmark keeps its history as a Python constant any more.
    for path in HISTORY_DIR.parent.parent.joinpath("bench").glob("*.py"):
        assert "\nHISTORY = [" not in path.read_text(), path.name


def test_every_result_file_has_a_place_in_the_report() -> None:
    from bench.support import RESULTS

    stems = {path.stem for path in RESULTS.glob("*.json")}
    # latest.json is the report's own output; queue_variants.json is read by queue_throughput's
    # section (the idle-consumer reruns).
    assert stems - {"latest", "queue_variants"} == {s.name for s in report.SECTIONS}
