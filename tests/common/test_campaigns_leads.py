"""Lead CSV parsing (libs/campaigns/leads.py) under any file (hypothesis): refused with
a reason the user can read, or parsed; never an unhandled exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.campaigns.leads import InvalidCsv, InvalidLead, csv_rows, decode_csv, parse_lead


@settings(max_examples=300, deadline=None)
@given(content=st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8")),
    st.lists(st.lists(st.text(max_size=20), max_size=5), max_size=8).map(
        lambda rows: "\n".join(",".join(r) for r in [["phone", "name"], *rows]).encode()),
    st.text(max_size=200).map(lambda t: ("phone,name\n" + t).encode("utf-16")),
))  # fmt: skip
def test_csv_imports_refuse_or_parse(content: bytes) -> None:
    try:
        rows = list(csv_rows(decode_csv(content)))
    except InvalidCsv as exc:
        assert str(exc)  # a reason the user can read
        return
    for _, row in rows:
        try:
            parse_lead(row)
        except InvalidLead as exc:
            assert str(exc)


@pytest.mark.parametrize("size", [200_000, 2_000_000])
def test_huge_csv_fields_are_refused_not_crashed(size: int) -> None:
    content = b"phone,name\n+14155550100," + b"x" * size + b"\n"
    try:
        rows = list(csv_rows(decode_csv(content)))
    except InvalidCsv as exc:
        assert "field" in str(exc).lower() or "csv" in str(exc).lower()
    else:
        with pytest.raises(InvalidLead):
            parse_lead(rows[0][1])
