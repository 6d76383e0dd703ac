"""Fetching an image URL for the server (only with ``--allow-urls``) without making it a probe of the network.

* one overall deadline for the whole fetch (DNS, connect, every redirect, every byte), not a
  timeout per read: an origin that trickles bytes is cut off at the deadline;
* the host is resolved here and every address it resolves to must be public (not private,
  loopback, link-local, multicast, reserved or unspecified) unless it lies in an allowed network;
  the connection goes to the checked address itself (a second DNS answer cannot swap it), and
  the same check is made on every redirect;
* http and https only, at most :data:`MAX_REDIRECTS` redirects, at most ``limit`` bytes;
* errors are opaque: what was refused is logged by the server, the client learns only that the
  URL could not be fetched (no status, no bytes of the answer, no address).
"""
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from typing import List, Sequence, Tuple, Union

MAX_REDIRECTS = 5
_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class FetchError(Exception):
    """The URL was not fetched; ``why`` is for the server's log only, never for the client."""

    def __init__(self, why: str, status: int = 400):
        super().__init__(why)
        self.why, self.status = why, status


def parse_networks(specs: Sequence[str]) -> Tuple[_Network, ...]:
    """CIDR networks (``127.0.0.1/32``, ``10.0.0.0/8``, ``::1/128``) that URLs may reach although not public.

    Raises:
        ValueError: a spec that is no network, with the spec named.
    """
    out = []
    for spec in specs:
        try:
            out.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError as e:
            raise ValueError(f'--allow-url-network {spec!r} is not an IP network such as 10.0.0.0/8 ({e})') from None
    return tuple(out)


def _checked_addresses(host: str, port: int, allowed: Sequence[_Network], deadline: float) -> List[tuple]:
    """getaddrinfo of host:port; every address public or in ``allowed``, else :class:`FetchError`."""
    _remaining(deadline)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise FetchError(f'cannot resolve {host!r} ({e})') from None
    for *_, addr in infos:
        ip = ipaddress.ip_address(addr[0].split('%')[0])
        if not ip.is_global and not any(ip in net for net in allowed):
            raise FetchError(f'{host!r} resolves to {ip}, which is not a public address (allow it with '
                             f'--allow-url-network)')
    return infos


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError('the fetch deadline passed')
    return left


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to one already-checked address (the Host header keeps the URL's host)."""

    def __init__(self, host: str, port: int, family: int, address: tuple, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._family, self._address = family, address

    def connect(self) -> None:
        self.sock = socket.socket(self._family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._address)


class _PinnedTLSConnection(_PinnedConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


def _get(url: str, allowed: Sequence[_Network], deadline: float) -> Tuple[socket.socket, http.client.HTTPResponse]:
    """One GET of ``url`` (no redirect followed), connected to a checked address: (socket, response)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ('http', 'https'):
        raise FetchError(f'scheme {scheme!r} is not fetched (http and https only)')
    if not parts.hostname:
        raise FetchError('the URL has no host')
    try:
        port = parts.port or (443 if scheme == 'https' else 80)
    except ValueError as e:
        raise FetchError(f'bad port ({e})') from None
    family, _, _, _, address = _checked_addresses(parts.hostname, port, allowed, deadline)[0]
    cls = _PinnedTLSConnection if scheme == 'https' else _PinnedConnection
    conn = cls(parts.hostname, port, family, address, timeout=_remaining(deadline))
    target = urllib.parse.urlunsplit(('', '', parts.path or '/', parts.query, ''))
    conn.request('GET', target, headers={'User-Agent': 'swin_dense-serve', 'Accept': 'image/*'})
    sock = conn.sock
    sock.settimeout(_remaining(deadline))
    return sock, conn.getresponse()


def _read_body(sock: socket.socket, resp: http.client.HTTPResponse, limit: int, deadline: float) -> bytes:
    declared = resp.getheader('Content-Length')
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchError(f'Content-Length {declared} is over the limit of {limit} bytes', status=413)
    chunks, size = [], 0
    while True:
        sock.settimeout(_remaining(deadline))  # no single read may outlast the deadline
        chunk = resp.read1(65536)
        if not chunk:
            return b''.join(chunks)
        size += len(chunk)
        if size > limit:
            raise FetchError(f'more than the limit of {limit} bytes', status=413)
        chunks.append(chunk)


def fetch_url(url: str, limit: int, deadline_s: float, allowed: Sequence[_Network] = ()) -> bytes:
    """The body of an http(s) URL: at most ``limit`` bytes, within ``deadline_s`` seconds in all.

    Raises:
        FetchError: refused, failed, too slow (status 400), or larger than ``limit`` (status 413);
            its message is for the server's log.
    """
    deadline = time.monotonic() + deadline_s
    for _ in range(MAX_REDIRECTS + 1):
        sock = resp = None
        try:
            sock, resp = _get(url, allowed, deadline)
            location = resp.getheader('Location')
            if resp.status in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                continue
            if resp.status != 200:
                raise FetchError(f'HTTP status {resp.status}')
            return _read_body(sock, resp, limit, deadline)
        except TimeoutError:  # a read was cut at the deadline
            raise FetchError('the fetch deadline passed') from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise FetchError(f'{type(e).__name__}: {e}') from None
        finally:
            if resp is not None:
                resp.close()
            if sock is not None:
                sock.close()
    raise FetchError(f'more than {MAX_REDIRECTS} redirects')


__all__ = ['FetchError', 'MAX_REDIRECTS', 'fetch_url', 'parse_networks']
