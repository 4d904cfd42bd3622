"""The media server times its garbage collections (a collection pauses every stream of the
loop): noted by the collector's callback, written to the metrics by the idle sweep, since a
collection may start while prometheus_client's multiprocess lock is held."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from services.calls.media import server


def _count(generation: int) -> float:
    labels = {"generation": str(generation)}
    return REGISTRY.get_sample_value("switchboard_media_gc_pause_seconds_count", labels) or 0.0


def test_collections_are_noted_then_written_by_the_sweep() -> None:
    server._flush_collections()
    before = _count(2)
    gc.callbacks.append(server._on_collection)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(server._on_collection)
    assert _count(2) == before  # only noted: no metrics lock taken inside the collector
    server._flush_collections()
    assert _count(2) == before + 1
