"""SQL fragments of the SQLite full-text index of spans, used by its indexer and lexical search.

The triggers that record changed spans (`spans_fts_changes`) were made by migrations, which hold
their own frozen copies of these fragments: editing one here leaves existing databases as they
are, so a change the triggers must follow needs a new migration.
"""

from __future__ import annotations

TEXT_COLUMNS = ("name", "span_type", "model", "error", "input", "output")
FTS_COLUMNS = ", ".join(TEXT_COLUMNS)
# Long conversations repeat in every step's input; indexing a bounded prefix keeps ingestion
# cost flat (the embedder reads far less than this anyway).
FTS_CHARS = 8000

# The full-text index's file is attached to a searching connection under this name.
INDEX_SCHEMA = "fts"
# Spans with a primary key up to this one are in the index; newer ones wait for the indexer, as
# do spans changed or deleted since its last pass (`spans_fts_changes`).
INDEXED_THROUGH = f"(SELECT indexed_through FROM {INDEX_SCHEMA}.spans_fts_progress)"
PENDING_CHANGES = "(SELECT span_pk FROM spans_fts_changes)"

ENQUEUE_FOR_EMBEDDING = (
    "INSERT INTO span_index_queue (span_pk, seq) VALUES (new.pk, 1) "
    "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
)


def fts_value_list(row: str) -> list[str]:
    """The indexed values of the span `row` (`new`, `old` or a table alias), in column order."""
    return [
        f"substr({row}.{c}, 1, {FTS_CHARS})" if c in ("input", "output", "error") else f"{row}.{c}"
        for c in TEXT_COLUMNS
    ]


def fts_values(row: str) -> str:
    return ", ".join(fts_value_list(row))


def sqlite_text_changed() -> str:
    return " OR ".join(f"old.{c} IS NOT new.{c}" for c in TEXT_COLUMNS)
