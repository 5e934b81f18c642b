"""Pure arithmetic of the preflight estimates (index size, build time, HOT share)."""

from __future__ import annotations

import pytest

from dbmigrate.engine import estimates
from dbmigrate.engine.estimates import SampleBuild


def test_btree_size_of_bigint_keys_matches_postgres_layout() -> None:
    # A bigint btree of 1,000,000 rows is 22,487,040 bytes in PostgreSQL 15 (2745 pages):
    # 16-byte entries (8 header + 8 key) + 4-byte line pointer, 90 % leaf fill.
    size = estimates.btree_size_bytes(1_000_000, 8)
    assert size == pytest.approx(22_487_040, rel=0.02)


def test_btree_size_grows_with_rows_and_width() -> None:
    small = estimates.btree_size_bytes(10_000, 8)
    assert estimates.btree_size_bytes(100_000, 8) > 9 * small
    assert estimates.btree_size_bytes(10_000, 40) > small
    assert estimates.btree_size_bytes(0, 8) == 2 * estimates.PAGE  # metapage and one leaf


def test_column_width_prefers_statistics() -> None:
    assert estimates.column_width(21, -1) == 21
    assert estimates.column_width(None, 8) == 8
    assert estimates.column_width(None, -1) == estimates.DEFAULT_VARLENA_WIDTH


def test_index_size_basis_names_the_method() -> None:
    _, basis = estimates.index_size_bytes("btree", 1000, 8, 10)
    assert basis.startswith("btree")
    brin, basis = estimates.index_size_bytes("brin", 10**7, 8, 100_000)
    assert basis.startswith("brin") and brin < 100 * estimates.PAGE
    _, basis = estimates.index_size_bytes("gin", 1000, 8, 10)
    assert "rough" in basis


def test_sample_scaling_is_linear_in_size_and_n_log_n_in_time() -> None:
    sample = SampleBuild(rows=100_000, seconds=0.2, size_bytes=3_000_000)
    size, seconds = estimates.scale_sample(sample, 1_000_000, 0, concurrently=False)
    assert size == 30_000_000
    ratio = (1_000_000 * 19.93) / (100_000 * 16.61)
    assert seconds == pytest.approx(0.2 * ratio, rel=0.01)
    _, concurrent = estimates.scale_sample(sample, 1_000_000, 0, concurrently=True)
    assert concurrent == pytest.approx(seconds * estimates.CONCURRENT_FACTOR)
    _, with_heap = estimates.scale_sample(sample, 1_000_000, 200 * 1024 * 1024, False)
    assert with_heap == pytest.approx(seconds + 1.0)


def test_small_table_sample_is_the_table() -> None:
    sample = SampleBuild(rows=500, seconds=0.01, size_bytes=16384)
    assert estimates.scale_sample(sample, 500, 0, False) == (16384, pytest.approx(0.01))


def test_hot_percent() -> None:
    assert estimates.hot_percent(None, None) is None
    assert estimates.hot_percent(0, 0) is None
    assert estimates.hot_percent(200, 199) == 99.5
