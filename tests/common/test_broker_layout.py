"""Only the broker adapter knows how a broker stores messages: any other module of the
services and libraries that names a broker key or queue suffix fails this test, so a Dramatiq
upgrade or another broker changes one package (libs/queueops/broker_adapter/)."""

from __future__ import annotations

import re

from libs.common.settings import ROOT

#: Dramatiq's Redis keys and queue suffixes, and its helpers that build them.
LAYOUT = re.compile(
    r"""["'`]dramatiq:|\.DQ\b|\.XQ\b|\.msgs\b|__heartbeats__|\bdq_name\b|\bxq_name\b"""
)
ALLOWED = ROOT / "libs" / "queueops" / "broker_adapter"


def _offenders() -> list[str]:
    found = []
    for top in ("libs", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if ALLOWED in path.parents:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if LAYOUT.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_module_but_the_adapter_names_a_broker_key_or_queue_suffix() -> None:
    assert _offenders() == []


def test_the_check_finds_what_it_looks_for() -> None:
    for line in ('key = "dramatiq:default"', "name = f'{queue}.XQ'", "f'{q}.DQ.msgs'"):
        assert LAYOUT.search(line), line
    assert not LAYOUT.search("import dramatiq")
