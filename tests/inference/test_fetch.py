"""URL inputs of the server (only with --allow-urls): http(s) only, size-limited, one overall deadline,
no private / loopback / link-local targets unless allowed (checked on every redirect), errors for the
log only. A loopback HTTP server in a thread stands in for the remote host; nothing leaves the machine,
so the tests allow 127.0.0.1/32 explicitly where they mean to reach it."""
import http.server
import threading
import time

import pytest

from swin_dense.inference.fetch import FetchError, fetch_url, parse_networks

LOOPBACK = parse_networks(['127.0.0.1/32'])
PNG_BODY = b'\x89PNG fake image bytes' * 10


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == '/img.png':
            self.send_response(200)
            self.send_header('Content-Length', str(len(PNG_BODY)))
            self.end_headers()
            self.wfile.write(PNG_BODY)
        elif self.path == '/slow.png':  # 1 byte every 0.5 s: each read is quick, the whole fetch is not
            self.send_response(200)
            self.send_header('Content-Length', '40')
            self.end_headers()
            for _ in range(40):
                try:
                    self.wfile.write(b'x')
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.5)
        elif self.path.startswith('/to/'):
            self.send_response(302)
            self.send_header('Location', self.path[len('/to/'):])
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_fetch_url(http_server):
    assert fetch_url(http_server + '/img.png', limit=1000, deadline_s=5, allowed=LOOPBACK) == PNG_BODY
    with pytest.raises(FetchError) as info:
        fetch_url(http_server + '/img.png', limit=100, deadline_s=5, allowed=LOOPBACK)
    assert info.value.status == 413
    with pytest.raises(FetchError, match='HTTP status 404'):
        fetch_url(http_server + '/missing.png', limit=1000, deadline_s=5, allowed=LOOPBACK)
    for url in ('file:///etc/hostname', 'ftp://127.0.0.1/x.png'):
        with pytest.raises(FetchError, match='http and https only'):
            fetch_url(url, limit=1000, deadline_s=5, allowed=LOOPBACK)


def test_one_deadline_for_the_whole_fetch(http_server):
    t0 = time.monotonic()
    with pytest.raises(FetchError, match='deadline'):
        fetch_url(http_server + '/slow.png', limit=1000, deadline_s=1.5, allowed=LOOPBACK)
    # the origin would take 20 s; the deadline ends it after 1.5 s (plus at most one 0.5 s byte gap, and slack
    # for a busy machine)
    assert time.monotonic() - t0 < 4


@pytest.mark.parametrize('host', ['127.0.0.1', 'localhost', '10.1.2.3', '192.168.0.1', '169.254.169.254', '[::1]',
                                  '0.0.0.0'])
def test_private_targets_are_refused_without_a_connection(host):
    with pytest.raises(FetchError, match='not a public address'):
        fetch_url(f'http://{host}:9/x.png', limit=1000, deadline_s=5)


def test_redirects_are_checked_too(http_server):
    port = http_server.rsplit(':', 1)[1]
    assert fetch_url(f'{http_server}/to/{http_server}/img.png', limit=1000, deadline_s=5, allowed=LOOPBACK) == PNG_BODY
    # the first hop is allowed, the redirect goes to an address that is not: refused
    with pytest.raises(FetchError, match='not a public address'):
        fetch_url(f'{http_server}/to/http://127.0.0.2:{port}/img.png', limit=1000, deadline_s=5, allowed=LOOPBACK)
    with pytest.raises(FetchError, match='redirects'):
        loop = f'{http_server}/to/' * 7 + f'{http_server}/img.png'
        fetch_url(loop, limit=1000, deadline_s=5, allowed=LOOPBACK)


def test_bad_network_spec_is_named():
    with pytest.raises(ValueError, match="'10.0.0.0/99' is not an IP network"):
        parse_networks(['10.0.0.0/99'])
