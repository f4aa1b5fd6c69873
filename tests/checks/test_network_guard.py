"""No test touches the internet: the suite's guard (tests/conftest.py) refuses and reports it."""

from __future__ import annotations

import socket

import conftest
import pytest


@pytest.mark.parametrize("address", [("192.0.2.1", 9), ("example.org", 80)])
def test_a_connection_beyond_loopback_is_refused_and_fails_the_test(address: tuple[str, int]) -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="loopback only"):
        sock.connect(address)
    assert [repr(address)] == conftest._OUTSIDE  # what fails the test at its teardown
    conftest._OUTSIDE.clear()  # this test made it on purpose


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
    assert conftest._OUTSIDE == []
