"""How big a new index will be and how long it takes to build: the arithmetic, kept pure.

Size (btree): each entry is an 8-byte index tuple header plus the key data (average column widths
from pg_stats, else the type's length, 8-byte aligned) plus a 4-byte line pointer; CREATE INDEX
fills leaf pages to the default fillfactor of 90 % of the 8 KiB page (minus the page header and
btree special space); internal pages add one level per fan-out. Deduplication (PostgreSQL 13+)
makes indexes with many equal keys smaller, so for those the figure is an upper bound.

Time: the server is measured, not assumed. Preflight builds a btree over ``CALIBRATION_ROWS``
random md5 strings in a temporary table (rolled back) and times it; the per-row cost of a sort
(n log n) is then scaled to the table's rows and key width, plus one read of the table's heap at
``SCAN_BYTES_PER_SECOND``. CONCURRENTLY scans the heap twice and validates: ``CONCURRENT_FACTOR``.
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
CALIBRATION_ROWS = 100_000
CALIBRATION_WIDTH = 33  # md5 text: 32 characters and a 1-byte varlena header
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
class Calibration:
    """A measured index build on this server."""

    rows: int
    width: int
    seconds: float

    @property
    def seconds_per_row_log(self) -> float:
        """Seconds per row and per log2(rows), the unit of an n log n sort."""
        return self.seconds / (self.rows * math.log2(self.rows))


def build_seconds(
    rows: int,
    key_width: int,
    heap_bytes: int,
    calibration: Calibration | None,
    concurrently: bool,
) -> float:
    """Estimated build time: calibrated n log n sort scaled by width, plus reading the heap."""
    if calibration is not None and calibration.seconds > 0:
        unit = calibration.seconds_per_row_log
        width_ratio = (key_width + 16) / (calibration.width + 16)
    else:
        unit, width_ratio = FALLBACK_SECONDS_PER_ROW_LOG, 1.0
    n = max(rows, 2)
    seconds = unit * n * math.log2(n) * width_ratio + heap_bytes / SCAN_BYTES_PER_SECOND
    return seconds * (CONCURRENT_FACTOR if concurrently else 1.0)


def hot_percent(updates: int | None, hot_updates: int | None) -> float | None:
    """Share of HOT updates in percent, None without updates."""
    if not updates or hot_updates is None:
        return None
    return round(100.0 * hot_updates / updates, 1)
