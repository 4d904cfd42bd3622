"""``make probe-report``: the last probe's results (var/test-results/probe.json) into the
"Probed from outside" section of docs/reliability.md, the rest of the file kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from libs.common.settings import ROOT
from probe.model import CATEGORIES

RESULTS = ROOT / "var" / "test-results" / "probe.json"
REPORT = ROOT / "docs" / "reliability.md"
BEGIN = "<!-- probe:begin: written by `make probe-report` (probe/report.py); do not edit -->"
END = "<!-- probe:end -->"

INTRO = """## Probed from outside

`make probe` starts the embedded stack (`switchboard run` on free ports: SQLite, embedded
Redis, the Twilio and Gmail simulators, the dev console in front of the api), makes two
businesses and an operator token with the `switchboard` command, and uses the stack from
outside as an attacker and a careless client would: every operation of the api's OpenAPI
document (read from `/api/openapi.json` at run time, so a new operation is probed as it lands)
and every Twilio-facing route. `python -m probe --api URL [--calls URL] [--log FILE]` does the
same against a running deployment (tokens of two businesses made for the probe and an
operator's in `PROBE_TOKEN_A`, `PROBE_TOKEN_B`, `PROBE_OPERATOR_TOKEN`; with
`PROBE_TWILIO_AUTH_TOKEN` it also sends genuinely signed requests). Results go to
`var/test-results/probe.json`; `make probe-report` renders them here. `tests/e2e/test_probe.py`
runs the same probe in the suite and fails on any failed check, 5xx or leak, so this table
stays true.

- **tenant isolation**: business A makes one row of each kind through the api (lead, DNC entry,
  run, schedule, job, an inbound call, a Gmail connection and its synced receipts with an
  attachment); B names each in every operation's path (404), in bodies (`lead_id`,
  `connection_id`, `business_id`: refused) and in listing filters; B's answers are searched for
  anything of A's, and A's rows are read again afterwards, unchanged.
- **auth**: every operation without a token, with Basic credentials, an empty or unknown bearer,
  A's token altered (401), with the other role's token (403); the private endpoints through the
  public entry with dot segments and escapes (`/api/%2e%2e/metrics`…: never served).
- **bad input**: every JSON body nested 100,000 levels (closed and unclosed), truncated, not an
  object, invalid UTF-8, 50,000 keys, each field of a wrong type, each string 1 MB (refused where
  a maximum length is documented); every path id as text, negative, zero, 40 digits; every
  query parameter 2,000 characters long, a NUL, `-1`, `1e400`, `[]`; a 6 KB query string, a
  9 KB `Authorization`, 120 headers, a body over 10 MB, a malformed request line (the servers in
  front of Flask answer in the JSON error shape too); hostile CSV files (binary, invalid
  UTF-8, no phone column, 100,000 columns, an unclosed quote, empty) and one with a number on two
  lines, whose duplicate must be reported with its first line and the value kept.
- **webhook/WebSocket**: each webhook unsigned, forged, signed with another token, for another
  host, a genuine signature with a parameter altered or added (403), genuinely signed nonsense
  (4xx); the media stream's upgrade unsigned or forged (refused before the handshake); signed
  streams that are not a call (no `customParameters`, media or garbage before `start`, a call
  nobody answered, A's call claimed for another business) and A's ended call replayed, with the
  same or a new stream sid: closed within a second, nothing sent back.
- **secrets in logs**: everything the stack logged meanwhile, searched for every token the probe
  used (and the unknown ones it made up), Twilio's auth token, and secret-shaped text (what the
  services' own log filter would still scrub).

A check **fails** when the answer is not the expected one (status, JSON error shape, timing);
**5xx** counts answers of 500 or more; **leaks** counts what crossed a boundary: another
tenant's data or a change to it, a request without valid credentials or with a forged
signature accepted, a private endpoint served, a refused stream that got audio, a secret in a
log."""

FOUND = """### What the probe found

Its first run (issue 24) found no tenant leak, no accepted forged signature and no secret in a
log, and these defects, each fixed and each now a check above:

- A JSON body nested 100,000 levels deep answered `500` on every operation with a JSON body
  (the parser's recursion): now a cheap `400` past 32 levels (`libs/web/validation.py`).
- A replayed media-stream `start` of an ended call restarted the agent and replaced the call's
  stream sid and recording; a signed stream whose `start` had no `customParameters` stayed open,
  logging a warning per frame. The first `start` of a call now claims it in one conditional
  `UPDATE`; every later one, and anything but a valid `start`, closes the stream at once with
  one log line (`services/calls/media/stream.py`).
- The dev console passed `/api/%2e%2e/metrics` and its kin to the api, which served its
  metrics: it now routes and forwards the normalised path as nginx does
  (`devtools/dev_console.py`; `tests/deploy/test_edge.py` sends the same paths to both).
- On SQLite, `GET /api/queue/status` took the write lock and waited 30 s behind the probe's
  writes, and pages stalled behind it: reads now run in read-only transactions that never wait
  for the writer, and the health read is bounded (`libs/common/db.py`,
  `tests/e2e/test_sqlite_stalls.py`; load, not a check of this table).
- `{"business_id": true}` queued a due check for business 1, and a 1 MB actor name was
  accepted: booleans are not ids, and documented maximum lengths are enforced.
- A 6 KB query string (414) and a 9 KB `Authorization` (431) got gunicorn's HTML page, and
  nginx's own errors were HTML: both now answer in the JSON error shape.
- A CSV file with a number on two lines merged them silently: the import's result now names
  each duplicate row, its first line and the value kept."""


def render(results: dict[str, Any]) -> str:
    summary = results["summary"]
    lines = ["| category | checks | failed | 5xx | leaks |", "| --- | --- | --- | --- | --- |"]
    totals = dict.fromkeys(("checks", "failed", "server_errors", "leaks"), 0)
    for name in CATEGORIES:
        row = summary[name]
        totals = {key: totals[key] + row[key] for key in totals}
        lines.append(f"| {name} | {row['checks']} | {row['failed']} | **{row['server_errors']}** "
                     f"| **{row['leaks']}** |")  # fmt: skip
    lines.append(f"| all | {totals['checks']} | {totals['failed']} | "
                 f"**{totals['server_errors']}** | **{totals['leaks']}** |")  # fmt: skip
    ops = results["operations"]
    covered = (
        f"Operations covered: {ops['covered']} of the {ops['documented']} in the api's OpenAPI "
        f"document, and the Twilio-facing routes ({', '.join(results['twilio_routes'])}); "
        f"{results['requests']} requests."
    )
    if ops["not_covered"]:
        covered += f" Not covered: {', '.join(ops['not_covered'])}."
    load = ", ".join(f"{x:.1f}" for x in results["load"])
    footer = (
        f"Produced by `{results['command']}` on {results['finished_at']} UTC at commit "
        f"`{results['commit']}` against the {results['target']}; the probe took "
        f"{results['elapsed_s']:.0f} s on {results['cores']} cores (load average {load})."
    )
    failures = [f"- {f['category']}: {f['operation']}, {f['case']}: {f['problem']}"
                for f in results["failures"]]  # fmt: skip
    body = [INTRO, "", *lines, "", covered, "", footer]
    if failures:
        body += ["", "Failed checks:", "", *failures]
    return "\n".join([*body, "", FOUND])


def write(path: Path, results: dict[str, Any]) -> None:
    """Replace the probe's section of ``path`` (appended when it has none), keeping the rest."""
    section = f"{BEGIN}\n{render(results)}\n{END}\n"
    current = path.read_text()
    if BEGIN in current and END in current:
        before, rest = current.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + section + (f"\n{after}" if after else "")
    else:
        text = current.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    if not RESULTS.exists():
        print(f"no probe results at {RESULTS}: run `make probe` (or the test suite) first")
        return 1
    write(REPORT, json.loads(RESULTS.read_text()))
    print(f"{REPORT} written from {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
