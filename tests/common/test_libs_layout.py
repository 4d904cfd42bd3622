"""libs/ is a picture of the architecture (issue 23): libs/common holds only what every service
needs and stays small; every other library is named, and docs/architecture.md says what each
holds and who imports it. The layering itself is import-linter's contract (pyproject.toml)."""

from __future__ import annotations

from libs.common.settings import ROOT

LIMIT = 5_000
LIBS = ROOT / "libs"


def _lines(package: str) -> int:
    return sum(
        len(path.read_text().splitlines())
        for path in (LIBS / package).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def _libraries() -> list[str]:
    return sorted(p.name for p in LIBS.iterdir() if (p / "__init__.py").is_file())


def test_common_stays_under_five_thousand_lines() -> None:
    assert _lines("common") < LIMIT, f"libs/common has {_lines('common')} lines (limit {LIMIT})"


def test_every_library_is_described_in_the_architecture_document() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [name for name in _libraries() if f"| `libs/{name}` |" not in doc]
    assert missing == []


def test_the_layout_checks_see_the_libraries() -> None:
    assert {"common", "queueops", "telephony", "events", "web"} <= set(_libraries())
    assert _lines("common") > 0
