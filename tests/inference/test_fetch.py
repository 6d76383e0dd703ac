"""URL inputs of the server (only with --allow-urls): http(s) only, size-limited, errors as 4xx.
A loopback HTTP server in a thread stands in for the remote host; nothing leaves the machine."""
import http.server
import threading

import pytest

from swin_dense.inference.server import ApiError, fetch_url


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == '/img.png':
            body = b'\x89PNG fake image bytes' * 10
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_fetch_url(http_server):
    data = fetch_url(http_server + '/img.png', limit=1000, timeout=5, index=0)
    assert data.startswith(b'\x89PNG') and len(data) == 210
    with pytest.raises(ApiError) as info:
        fetch_url(http_server + '/img.png', limit=100, timeout=5, index=2)
    assert info.value.status == 413 and info.value.index == 2
    with pytest.raises(ApiError) as info:
        fetch_url(http_server + '/missing.png', limit=1000, timeout=5, index=0)
    assert info.value.status == 400 and info.value.error == 'url_fetch_failed'
    for url in ('file:///etc/hostname', 'ftp://127.0.0.1/x.png'):
        with pytest.raises(ApiError) as info:
            fetch_url(url, limit=1000, timeout=5, index=0)
        assert info.value.error == 'bad_url'
