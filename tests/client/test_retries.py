"""Retry: an immutable policy; pure decisions, no I/O."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_requests._retries import IDEMPOTENT_METHODS, Retry

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def after(retry: Retry, n: int) -> Retry:
    for _ in range(n):
        retry = retry.increment()
    return retry


def test_defaults() -> None:
    r = Retry()
    assert (r.total, r.retries_made, r.exhausted) == (3, 0, False)
    assert r.status_forcelist == frozenset()
    assert r.allowed_methods == IDEMPOTENT_METHODS
    assert [after(r, n).backoff() for n in range(3)] == [0.1, 0.2, 0.4]


def test_increment_returns_a_new_object_and_counts_to_exhaustion() -> None:
    r = Retry(total=2)
    r1 = r.increment()
    assert r.retries_made == 0 and r1.retries_made == 1
    assert r1 is not r and r1.total == 2
    assert not r1.exhausted and r1.increment().exhausted


def test_total_zero_disables_retries() -> None:
    assert Retry(total=0).exhausted


def test_is_frozen() -> None:
    r = Retry()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.total = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Retry(3)  # type: ignore[call-arg]  # keyword-only


def test_backoff_doubles_up_to_the_cap() -> None:
    r = Retry(total=100, backoff_factor=0.5, backoff_max=10.0)
    assert [after(r, n).backoff() for n in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert dataclasses.replace(r, retries_made=5000).backoff() == 10.0  # no float overflow


def test_zero_backoff_factor_never_sleeps() -> None:
    assert {after(Retry(backoff_factor=0), n).backoff() for n in range(5)} == {0.0}


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 10.0), (3.0, 13.0)])
def test_jitter_is_added_after_the_cap(
    monkeypatch: pytest.MonkeyPatch, draw: float, expected: float
) -> None:
    calls: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        calls.append((a, b))
        return draw

    monkeypatch.setattr(random, "uniform", uniform)
    r = after(Retry(total=10, backoff_factor=1.0, backoff_max=10.0, backoff_jitter=3.0), 8)
    assert r.backoff() == expected
    assert calls == [(0.0, 3.0)]


@given(n=st.integers(0, 20), jitter=st.floats(0.01, 5.0))
def test_jitter_stays_within_bounds(n: int, jitter: float) -> None:
    r = after(Retry(total=30, backoff_factor=0.25, backoff_max=3.0, backoff_jitter=jitter), n)
    base = min(0.25 * 2**n, 3.0)
    assert base <= r.backoff() <= base + jitter


def test_jitter_varies() -> None:
    r = Retry(backoff_jitter=1.0)
    assert len({r.backoff() for _ in range(20)}) > 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("59", 59.0),
        ("86400", 60.0),  # capped by retry_after_max
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Wed, 01 May 2024 12:00:45 GMT", 45.0),
        ("Wednesday, 01-May-24 12:00:10 GMT", 10.0),  # obsolete RFC 850 form
        ("Wed May  1 12:00:20 2024", 20.0),  # asctime form, no zone: UTC
        (format_datetime(NOW - timedelta(days=1), usegmt=True), 0.0),  # in the past
        (format_datetime(NOW + timedelta(days=2), usegmt=True), 60.0),
    ],
)
def test_retry_after_seconds_and_dates(header: str, expected: float) -> None:
    r = Retry(retry_after_max=60.0)
    assert r.sleep_for(header, NOW.timestamp()) == pytest.approx(expected)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "٣", "Wed, 99 Foo 2024", "1e3"])
def test_unparsable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    r = after(Retry(backoff_factor=2.0), 1)
    assert r.sleep_for(header, NOW.timestamp()) == 4.0


def test_retry_after_is_ignored_when_not_respected() -> None:
    r = Retry(respect_retry_after=False, backoff_factor=1.5)
    assert r.sleep_for("30", NOW.timestamp()) == 1.5


@given(header=st.text(max_size=40))
def test_sleep_for_never_raises_and_stays_within_caps(header: str) -> None:
    r = Retry(backoff_factor=0.5, retry_after_max=60.0)
    assert 0.0 <= r.sleep_for(header, NOW.timestamp()) <= 60.0


@pytest.mark.parametrize("method", ["GET", "get", "Head", "PUT", "DELETE", "OPTIONS", "TRACE"])
def test_idempotent_methods_are_retryable(method: str) -> None:
    assert Retry().is_method_retryable(method)


@pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT", "PROPFIND"])
def test_other_methods_are_not(method: str) -> None:
    assert not Retry().is_method_retryable(method)


def test_allowed_methods_are_upper_cased() -> None:
    r = Retry(allowed_methods=frozenset({"post", "Get"}))
    assert r.allowed_methods == {"POST", "GET"}
    assert r.is_method_retryable("post") and not r.is_method_retryable("PUT")


def test_status_needs_the_forcelist_and_a_retryable_method() -> None:
    r = Retry(status_forcelist=frozenset({429, 503}))
    assert r.is_status_retryable("GET", 503) and r.is_status_retryable("get", 429)
    assert not r.is_status_retryable("GET", 500)
    assert not r.is_status_retryable("POST", 503)
    assert not Retry().is_status_retryable("GET", 503)  # empty forcelist by default


def test_sets_given_as_other_iterables_are_frozen() -> None:
    r = Retry(status_forcelist=[503, 503], allowed_methods=("get",))  # type: ignore[arg-type]
    assert r.status_forcelist == frozenset({503}) and r.allowed_methods == frozenset({"GET"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total": -1}, "Retry.total must be finite and >= 0, got -1"),
        ({"total": 1.5}, "Retry.total must be an int, got 1.5"),
        ({"total": True}, "Retry.total must be an int, got True"),
        ({"backoff_factor": -0.1}, "Retry.backoff_factor must be finite and >= 0, got -0.1"),
        ({"backoff_max": float("inf")}, "Retry.backoff_max must be finite and >= 0, got inf"),
        ({"backoff_jitter": float("nan")}, "Retry.backoff_jitter must be finite"),
        ({"retry_after_max": "60"}, "Retry.retry_after_max must be a number, got '60'"),
        ({"retries_made": -2}, "Retry.retries_made must be finite and >= 0, got -2"),
        ({"status_forcelist": frozenset({99})}, "Retry.status_forcelist: 99 is not an HTTP status"),
        ({"status_forcelist": frozenset({"503"})}, "'503' is not an HTTP status"),
        ({"status_forcelist": 503}, "Retry.status_forcelist must be a set, got 503"),
        ({"allowed_methods": "GET"}, "Retry.allowed_methods must be a set, got 'GET'"),
        ({"allowed_methods": frozenset({""})}, "Retry.allowed_methods must hold method names"),
    ],
)
def test_validation_names_the_field_and_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Retry(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_coerce() -> None:
    custom = Retry(total=7)
    assert Retry.coerce(custom) is custom
    assert Retry.coerce(None) == Retry()
    assert Retry.coerce(0).exhausted
    assert Retry.coerce(5) == Retry(total=5)
    with pytest.raises(ValueError, match=r"Retry\.total"):
        Retry.coerce(-1)


def test_is_hashable_and_compares_by_value() -> None:
    assert Retry(total=2) == Retry(total=2) != Retry(total=2).increment()
    assert len({Retry(), Retry(), Retry(total=1)}) == 2
