"""The row the row-writing workload inserts: plain SQL with no imports, so RQ's job module can
use it without loading anything it does not need (see bench/queue_rq.py)."""

from typing import Final

TABLE: Final = "bench_rows"
CREATE_TABLE: Final = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, n integer NOT NULL, "
    "written_at timestamptz NOT NULL DEFAULT now())"
)
INSERT_ROW: Final = f"INSERT INTO {TABLE} (n) VALUES (:n)"
