"""What every runner shares: the ports it gives the processes it starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.workers.runners import base


class OfferedSocket:
    """A socket whose port, once bound to port 0, is the kernel's next offer in `offers`."""

    offers: Iterator[int]

    def __init__(self, *_: object) -> None:
        self._port = 0

    def __enter__(self) -> OfferedSocket:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def bind(self, _address: tuple[str, int]) -> None:
        self._port = next(self.offers)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)


def test_a_port_given_lately_is_not_given_again_though_the_kernel_offers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first process has not bound its port yet when the second is given one.
    OfferedSocket.offers = iter([41000, 41000, 41000, 41001])
    monkeypatch.setattr(base.socket, "socket", OfferedSocket)
    monkeypatch.setattr(base, "_GIVEN", base.deque(maxlen=256))

    assert [base.free_port(), base.free_port()] == [41000, 41001]
