"""Names of the operator's objects: deterministic, valid DNS labels of at most 63 characters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbmigrate.api.durations import (
    InvalidDuration,
    duration_milliseconds,
    format_duration,
    parse_duration,
)
from dbmigrate.specs import naming

STEPS = ("plan", "backup", "apply", "verify", "rollback")
# DNS-1123 subdomains, as Kubernetes allows for a resource name (up to 253 characters).
SUBDOMAIN = st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z", fullmatch=True)


def test_short_names_are_kept_readable() -> None:
    assert naming.job_name("orders", "apply", 3) == "orders-apply-g3"
    assert naming.inline_config_map_name("orders") == "orders-migrations"
    assert naming.label_value("orders") == "orders"


def test_long_name_is_cut_with_a_hash_and_keeps_step_and_generation() -> None:
    resource = "a-very-long-database-migration-name-for-the-analytics-team-in-production"
    name = naming.job_name(resource, "rollback", 12345)
    assert len(name) <= 63
    assert name.endswith("-rollback-g12345")
    assert name.startswith("a-very-long-database-migration")
    assert naming.is_dns_label(name)


def test_names_that_share_a_long_prefix_do_not_collide() -> None:
    base = "x" * 70
    assert naming.job_name(base + "-one", "plan", 1) != naming.job_name(base + "-two", "plan", 1)


def test_dots_are_replaced_and_hashed_so_a_dot_and_a_dash_differ() -> None:
    dotted = naming.job_name("orders.v2", "plan", 1)
    dashed = naming.job_name("orders-v2", "plan", 1)
    assert naming.is_dns_label(dotted)
    assert dotted != dashed


@given(resource=SUBDOMAIN, step=st.sampled_from(STEPS), generation=st.integers(1, 10**12))
def test_every_job_name_is_a_dns_label_and_deterministic(
    resource: str, step: str, generation: int
) -> None:
    name = naming.job_name(resource, step, generation)
    assert naming.is_dns_label(name), name
    assert name == naming.job_name(resource, step, generation)
    assert name.endswith(f"-{step}-g{generation}")
    for other in (
        naming.inline_config_map_name(resource),
        naming.step_service_account_name(resource),
        naming.status_role_name(resource),
        naming.label_value(resource),
    ):
        assert naming.is_dns_label(other), other


def test_step_labels_carry_the_selector_labels() -> None:
    labels = naming.step_labels("orders", "backup", 2)
    assert labels == {
        "app.kubernetes.io/name": "dbmigrate",
        "app.kubernetes.io/managed-by": "dbmigrate-operator",
        "dbmigrate.io/migration": "orders",
        "dbmigrate.io/step": "backup",
        "dbmigrate.io/generation": "2",
    }
    assert naming.job_selector("orders") == (
        "dbmigrate.io/migration=orders,app.kubernetes.io/managed-by=dbmigrate-operator"
    )


def test_run_id_is_deterministic_and_names_resource_and_generation() -> None:
    uid = "3f2c1a9e-0000-4000-8000-000000000000"
    assert naming.run_id("orders", uid, 4) == "orders-g4-3f2c1a9e"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("5s", timedelta(seconds=5)),
        ("2m", timedelta(minutes=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("1h0m5s250ms", timedelta(hours=1, seconds=5, milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 s", "-5s", "5d", "1h-30m", "ms", "0s", "0h0m"])
def test_parse_duration_refuses_bad_input_with_the_grammar(text: str) -> None:
    with pytest.raises(InvalidDuration, match=r"duration"):
        parse_duration(text)


def test_duration_helpers() -> None:
    assert duration_milliseconds("1.0005s") == 1001  # rounded up, never a shorter timeout
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(milliseconds=500)) == "500ms"
    assert parse_duration(format_duration(timedelta(seconds=3725))) == timedelta(seconds=3725)
