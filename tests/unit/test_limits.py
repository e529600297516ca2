"""Per-tenant request rate (service/limits.py): a token bucket per tenant, on a fake clock."""

import pytest

from service.errors import RateLimitExceeded
from service.limits import RequestRate


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_request_per_token_and_tenants_apart():
    clock = Clock()
    rate = RequestRate(per_second=2, burst=3, clock=clock)
    for _ in range(3):
        rate.spend("a")
    with pytest.raises(RateLimitExceeded) as refused:
        rate.spend("a")
    assert refused.value.retry_after == pytest.approx(0.5) and refused.value.code == "rate_limit_exceeded"
    rate.spend("b")  # b has its own bucket
    clock.now += 0.5  # one token back
    rate.spend("a")
    with pytest.raises(RateLimitExceeded):
        rate.spend("a")
    clock.now += 60  # never more than the burst
    for _ in range(3):
        rate.spend("a")
    with pytest.raises(RateLimitExceeded):
        rate.spend("a")


def test_no_rate_means_no_limit_and_the_burst_is_at_least_one_second_of_rate():
    rate = RequestRate(per_second=0)
    for _ in range(1000):
        rate.spend("a")
    assert RequestRate(per_second=5).burst == 5 and RequestRate(per_second=0.1).burst == 1
