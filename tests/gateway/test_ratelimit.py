"""Token buckets per key."""

from __future__ import annotations

import pytest

from gateway.ratelimit import Limit, RateLimiter, TokenBucket


def test_bucket_grants_the_burst_then_says_how_long_to_wait() -> None:
    """A full bucket grants `burst` requests at once, then the wait for one token."""
    bucket = TokenBucket(Limit(rate_per_s=2, burst=3), updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)


def test_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    """Tokens come back at rate_per_s and never exceed the burst."""
    bucket = TokenBucket(Limit(rate_per_s=2, burst=3), updated=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) > 0
    bucket.take(100.0)
    assert bucket.tokens == pytest.approx(2.0)


def test_charge_goes_into_debt() -> None:
    """A charge beyond the tokens left makes the next request wait the debt off."""
    bucket = TokenBucket(Limit(rate_per_s=10, burst=5), updated=0.0)
    bucket.charge(0.0, 15)
    assert bucket.take(0.0) == pytest.approx(1.1)
    assert bucket.take(1.1) == 0.0


def test_limiter_keeps_one_bucket_per_key_with_its_role_limit() -> None:
    """Keys do not share tokens, and each gets its role's burst."""
    limiter = RateLimiter({"user": Limit(1, 1), "admin": Limit(1, 3)})
    assert limiter.take("alice", "user", 0.0) == 0.0
    assert limiter.take("alice", "user", 0.0) > 0
    assert limiter.take("bob", "user", 0.0) == 0.0
    assert [limiter.take("root", "admin", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_limiter_forgets_revoked_keys() -> None:
    """Buckets of keys no longer known are dropped."""
    limiter = RateLimiter({"user": Limit(1, 1)})
    limiter.take("alice", "user", 0.0)
    limiter.forget(keep=set())
    assert limiter.take("alice", "user", 0.0) == 0.0


def test_limit_refuses_nonsense() -> None:
    """A non-positive rate or a zero burst is an error."""
    with pytest.raises(ValueError, match="rate_per_s"):
        Limit(0, 1)


def test_quota_headers_name_the_policy_and_what_is_left() -> None:
    """RateLimit-Policy gives the burst and its refill window, RateLimit the requests left."""
    limiter = RateLimiter({"user": Limit(rate_per_s=2, burst=10)})
    limiter.take("alice", "user", 0.0)
    headers = limiter.headers("alice", "user", 0.0)
    assert headers == {"RateLimit-Policy": '"user";q=10;w=5', "RateLimit": '"user";r=9;t=0'}


def test_quota_headers_of_an_empty_bucket_say_when_the_next_request_may_go() -> None:
    """With no token left, RateLimit says r=0 and the whole seconds until one is back."""
    limiter = RateLimiter({"user": Limit(rate_per_s=0.5, burst=1)})
    limiter.take("alice", "user", 0.0)
    assert limiter.headers("alice", "user", 0.0)["RateLimit"] == '"user";r=0;t=2'
