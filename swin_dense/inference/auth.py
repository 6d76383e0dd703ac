"""API keys for the server: ``Authorization: Bearer <key>`` on every path but ``/health``.

The keys come from the ``SWIN_DENSE_API_KEY`` environment variable (one key, or several separated by
commas, so that a new key can be handed out before the old one is withdrawn). They are compared in
constant time (:func:`hmac.compare_digest`, against every key) and never logged or echoed.
"""
import hmac
import json
from typing import Sequence, Tuple

#: The environment variable holding the accepted keys.
API_KEY_ENV = 'SWIN_DENSE_API_KEY'
#: Paths open without a key (liveness / readiness probes).
OPEN_PATHS = ('/health',)


def parse_api_keys(value: str) -> Tuple[str, ...]:
    """The keys of a comma-separated list (blanks around them and empty entries dropped)."""
    return tuple(k.strip() for k in (value or '').split(',') if k.strip())


def key_matches(header: bytes, keys: Sequence[bytes]) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <one of keys>``, in time independent of the keys."""
    scheme, _, token = header.partition(b' ')
    token = token.strip()
    matched = False
    for key in keys:  # every key is compared, so the time does not tell which one (or how much of it) matched
        matched |= hmac.compare_digest(token, key)
    return scheme.lower() == b'bearer' and matched


class BearerAuth:
    """ASGI middleware: 401 JSON for HTTP requests without a valid key, except :data:`OPEN_PATHS`.

    Args:
        app: the ASGI app it guards.
        keys: the accepted keys (at least one).
    """

    def __init__(self, app, keys: Sequence[str]):
        if not keys:
            raise ValueError('BearerAuth needs at least one key')
        self.app, self.keys = app, [k.encode() for k in keys]

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http' or scope['path'] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope['headers']).get(b'authorization', b'')
        if key_matches(header, self.keys):
            return await self.app(scope, receive, send)
        body = json.dumps({'error': 'unauthorized', 'detail': 'this endpoint needs "Authorization: Bearer <key>" '
                                                              'with a key the server accepts'}).encode()
        await send({'type': 'http.response.start', 'status': 401,
                    'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                                (b'www-authenticate', b'Bearer')]})
        await send({'type': 'http.response.body', 'body': body})


__all__ = ['API_KEY_ENV', 'OPEN_PATHS', 'BearerAuth', 'key_matches', 'parse_api_keys']
