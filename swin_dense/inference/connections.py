"""Connections that send no request: uvicorn's h11 protocol with a deadline for the request head.

uvicorn (0.54) closes idle keep-alive connections after ``timeout_keep_alive``, but a connection that
opens and then sends nothing, or only part of a request line and headers, stays open for as long as
the client likes: a few hundred of them hold a server's connection slots. :func:`head_deadline_protocol`
gives uvicorn an ``http`` protocol class that closes a connection whose request head is not complete
``seconds`` after the connection opened or after its previous response. The body has its own
deadline in the app (``ServerSettings.body_timeout_s``).
"""
import asyncio
from typing import Optional, Type

from uvicorn.protocols.http.h11_impl import H11Protocol


def head_deadline_protocol(seconds: float) -> Type[H11Protocol]:
    """An ``H11Protocol`` subclass that closes connections without a complete request head in ``seconds``."""

    class HeadDeadlineH11Protocol(H11Protocol):
        _head_timer: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_request():
                self._disarm()
            elif self._head_timer is None:  # the head of the next request on a kept-alive connection
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _in_request(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self) -> None:
            self._head_timer = asyncio.get_running_loop().call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expire(self) -> None:
            self._head_timer = None
            if not self._in_request() and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineH11Protocol


__all__ = ['head_deadline_protocol']
