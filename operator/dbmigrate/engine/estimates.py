"""How big a new index will be and how long it takes to build: the arithmetic, kept pure.

Size (btree): each entry is an 8-byte index tuple header plus the key data (average column widths
from pg_stats, else the type's length, 8-byte aligned) plus a 4-byte line pointer; CREATE INDEX
fills leaf pages to the default fillfactor of 90 % of the 8 KiB page (minus the page header and
btree special space); internal pages add one level per fan-out. Deduplication (PostgreSQL 13+)
makes indexes with many equal keys smaller, so for those the figure is an upper bound.

Measured, preferably: preflight copies a sample of the table (``TABLESAMPLE SYSTEM``, at most
``SAMPLE_ROWS`` rows) into a temporary table, builds the very same index on it (rolled back) and
scales the sample index's size linearly and its build time as an n log n sort to the table's
estimated rows, plus one read of the table's heap at ``SCAN_BYTES_PER_SECOND``. That captures the
real key types, collations, duplicates (deduplication) and this server's speed. CONCURRENTLY scans
the heap twice and validates: ``CONCURRENT_FACTOR``. Without a sample (no TEMP privilege, empty
table) the size formula above and a default rate are used, and the basis says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PAGE = 8192
PAGE_OVERHEAD = 24 + 16  # page header + btree special space
LEAF_FILL = 0.90
TUPLE_HEADER = 8
LINE_POINTER = 4
DEFAULT_VARLENA_WIDTH = 32
EXPRESSION_WIDTH = 16
SAMPLE_ROWS = 100_000
SCAN_BYTES_PER_SECOND = 200 * 1024 * 1024
CONCURRENT_FACTOR = 1.6
FALLBACK_SECONDS_PER_ROW_LOG = 1.0e-7


def align8(n: int) -> int:
    """Round up to the 8-byte MAXALIGN of 64-bit platforms."""
    return (n + 7) // 8 * 8


def column_width(avg_width: int | None, typlen: int) -> int:
    """Width of one key column: pg_stats.avg_width, else the fixed type length, else a guess."""
    if avg_width is not None and avg_width > 0:
        return avg_width
    if typlen > 0:
        return typlen
    return DEFAULT_VARLENA_WIDTH


def btree_size_bytes(rows: int, key_width: int) -> int:
    """Estimated size of a freshly built btree of ROWS entries of KEY_WIDTH bytes of key data."""
    entry = align8(TUPLE_HEADER + key_width) + LINE_POINTER
    leaf_capacity = max(1, int((PAGE - PAGE_OVERHEAD) * LEAF_FILL) // entry)
    inner_capacity = max(2, (PAGE - PAGE_OVERHEAD) // entry)
    pages = 1  # metapage
    level = max(1, math.ceil(rows / leaf_capacity))
    pages += level
    while level > 1:
        level = math.ceil(level / inner_capacity)
        pages += level
    return pages * PAGE


def index_size_bytes(method: str, rows: int, key_width: int, heap_pages: int) -> tuple[int, str]:
    """(size, basis) for an access method; only btree and brin are modelled closely."""
    if method == "brin":
        ranges = max(1, math.ceil(heap_pages / 128))
        return (
            2 + math.ceil(ranges * (key_width * 2 + 16) / PAGE)
        ) * PAGE, "brin: one summary per 128 heap pages"
    size = btree_size_bytes(rows, key_width)
    if method == "btree":
        return size, "btree: entries of 8 B header + key width (pg_stats) at 90 % leaf fill"
    return size, f"{method}: estimated as a btree of the same keys (rough)"


@dataclass(frozen=True)
class SampleBuild:
    """The same index built on a sample of the table."""

    rows: int
    seconds: float
    size_bytes: int


def _n_log_n(n: int) -> float:
    n = max(n, 2)
    return n * math.log2(n)


def scale_sample(
    sample: SampleBuild, rows: int, heap_bytes: int, concurrently: bool
) -> tuple[int, float]:
    """(size, seconds) of the full build, scaled from a sample build."""
    if sample.rows <= 0:
        return sample.size_bytes, 0.0
    size = int(sample.size_bytes * max(rows, sample.rows) / sample.rows)
    sort = sample.seconds * _n_log_n(rows) / _n_log_n(sample.rows)
    seconds = sort + heap_bytes / SCAN_BYTES_PER_SECOND
    return size, seconds * (CONCURRENT_FACTOR if concurrently else 1.0)


def default_build_seconds(rows: int, heap_bytes: int, concurrently: bool) -> float:
    """Build time at the default rate, when no sample could be built."""
    seconds = FALLBACK_SECONDS_PER_ROW_LOG * _n_log_n(rows) + heap_bytes / SCAN_BYTES_PER_SECOND
    return seconds * (CONCURRENT_FACTOR if concurrently else 1.0)


def hot_percent(updates: int | None, hot_updates: int | None) -> float | None:
    """Share of HOT updates in percent, None without updates."""
    if not updates or hot_updates is None:
        return None
    return round(100.0 * hot_updates / updates, 1)
