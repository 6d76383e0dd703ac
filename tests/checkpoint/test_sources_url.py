"""http(s):// checkpoints, served by a loopback http.server: cached once, complete, hash-checked, read safely."""
import hashlib
import http.server
import os
import threading
from functools import partial

import pytest
import torch

from checkpoint_helpers import Payload, ours
from swin_dense.checkpoint import CheckpointError, read_checkpoint
from swin_dense.checkpoint.download import CACHE_ENV
from swin_dense.checkpoint.sources import resolve_checkpoint


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder; ``/truncated/NAME`` announces NAME's full length but sends only half of it."""

    def do_GET(self):  # noqa: N802  (http.server's name)
        if not self.path.startswith('/truncated/'):
            return super().do_GET()
        body = open(os.path.join(self.directory, self.path[len('/truncated/'):]), 'rb').read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


class _Server:
    """A loopback HTTP server over ``folder``, stoppable in the middle of a test."""

    def __init__(self, folder):
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), partial(_Handler, directory=str(folder)))
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder served, server, cache folder): the cache moved to a temporary folder by $SWIN_DENSE_CHECKPOINTS."""
    folder, cache = tmp_path / 'www', tmp_path / 'cache'
    folder.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(cache))
    server = _Server(folder)
    yield folder, server, cache
    server.stop()


def _with_hash_name(folder, stem, state):
    """Save ``state`` as ``stem-<first 8 hex of its sha256>.pth`` (the torch.hub / mmpretrain naming)."""
    tmp = folder / 'tmp.pth'
    torch.save(state, tmp)
    name = f'{stem}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth'
    os.replace(tmp, folder / name)
    return name


def test_first_download_then_the_cache_with_the_server_stopped(served):
    folder, server, cache = served
    state = ours().state_dict()
    name = _with_hash_name(folder, 'tiny', {'state_dict': state})
    url = f'{server.url}/{name}'
    loaded, _ = read_checkpoint(url)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert sorted(os.listdir(cache)) == [name]  # complete, renamed, no temporary file left
    server.stop()
    assert resolve_checkpoint(url) == str(cache / name)
    again, _ = read_checkpoint(url)
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_wrong_hash_deletes_the_file_and_says_so(served):
    folder, server, cache = served
    torch.save({'state_dict': ours().state_dict()}, folder / 'tiny-deadbeef.pth')
    with pytest.raises(CheckpointError, match=r'SHA-256 [0-9a-f]{8}\.\.\., but its name says deadbeef.*deleted'):
        resolve_checkpoint(f'{server.url}/tiny-deadbeef.pth')
    assert os.listdir(cache) == []


def test_a_cached_file_that_no_longer_matches_its_hash_is_deleted(served):
    folder, server, cache = served
    name = _with_hash_name(folder, 'tiny', {'state_dict': ours().state_dict()})
    path = resolve_checkpoint(f'{server.url}/{name}')
    with open(path, 'r+b') as f:
        f.seek(100)
        f.write(b'\0' * 16)
    with pytest.raises(CheckpointError, match='the cached copy .* was deleted'):
        resolve_checkpoint(f'{server.url}/{name}')
    assert not os.path.exists(path)


def test_truncated_transfer_is_never_used(served):
    folder, server, cache = served
    torch.save({'state_dict': ours().state_dict()}, folder / 'tiny.pth')
    size = os.path.getsize(folder / 'tiny.pth')
    with pytest.raises(CheckpointError, match=f'ended after {size // 2} of {size} bytes'):
        resolve_checkpoint(f'{server.url}/truncated/tiny.pth')
    assert os.listdir(cache) == []


def test_pickled_payload_by_url_is_refused_and_never_runs(served, tmp_path):
    folder, server, _ = served
    target = tmp_path / 'pwned.txt'
    torch.save({'model': ours().state_dict(), 'extra': Payload(str(target))}, folder / 'evil.pth')
    with pytest.raises(CheckpointError, match='refusing to load'):
        read_checkpoint(f'{server.url}/evil.pth')
    assert not target.exists()


def test_offline_with_nothing_cached_says_how_to_pre_download(served):
    _, server, cache = served
    server.stop()
    url = f'{server.url}/swinv2_tiny_patch4_window8_256.pth'
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(url)
    path = str(cache / 'swinv2_tiny_patch4_window8_256.pth')
    assert f'cannot download {url}' in str(err.value) and f'wget -O {path} {url}' in str(err.value)


def test_http_error_names_the_status(served):
    _, server, _ = served
    with pytest.raises(CheckpointError, match='the server answered 404'):
        resolve_checkpoint(f'{server.url}/missing.pth')
