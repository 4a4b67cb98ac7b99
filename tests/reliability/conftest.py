"""Fixtures of the reliability suite: fault proxies in front of both S3 servers, configs that go through them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_s3strata.core import S3StrataAdvancedOptions, S3StrataConfig
from tests.conftest import Env, config_via
from tests.faults import FaultProxy, Faults
from tests.s3server import MotoS3Server

#: One attempt, so each fault is felt; a read timeout short enough that a stall costs a second, and
#: long enough that an answer slowed by a loaded machine (both tox environments at once) is no stall.
FAST = {"max_attempts": 1, "read_timeout": 1.0, "connect_timeout": 1.0, "orphan_grace_period": 0}
#: How long a stalled answer is withheld: well past the client's read timeout.
STALL = 2.0


@pytest.fixture(scope="session")
def faults() -> Faults:
    """The rules and request log shared by both proxies (request counts span both endpoints)."""
    return Faults(stall_seconds=STALL)


@pytest.fixture(scope="session")
def proxies(faults: Faults, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """A fault proxy in front of each S3 server."""
    pair = proxy_pair(moto_server, moto_server_b, faults)
    yield pair
    for proxy in pair:
        proxy.stop()


def proxy_pair(a: MotoS3Server, b: MotoS3Server, faults: Faults) -> tuple[FaultProxy, FaultProxy]:
    """Start a fault proxy in front of each of two S3 servers, sharing ``faults``."""
    return FaultProxy(a.host, a.port, faults).start(), FaultProxy(b.host, b.port, faults).start()


@pytest.fixture(autouse=True)
def _disarmed(faults: Faults) -> Iterator[None]:
    faults.reset()
    yield
    faults.reset()


def through(env: Env, proxies: tuple[FaultProxy, FaultProxy], layout: str, **advanced: Any) -> S3StrataConfig:
    """Return ``env``'s configuration with every request routed through the fault proxies."""
    return config_via(env, *proxies, layout, S3StrataAdvancedOptions(**{**FAST, **advanced}))
