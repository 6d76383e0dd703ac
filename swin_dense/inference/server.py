"""The online endpoint: a FastAPI app around one :class:`~swin_dense.inference.predictor.Predictor`.

``POST /score`` with ``{"input_data": [<base64 image>, ...]}`` (``Content-Type: application/json``)
answers a JSON list, one entry per image:

* detection: a list of ``{"label": <class name>, "label_id": <index>, "score", "box": [x1, y1, x2, y2],
  "mask": <COCO RLE, counts as str>}`` with ``score >= score_thr``;
* segmentation: ``{"height", "width", "classes": [<name of label 0>, ...], "label_png": <base64 PNG
  of class indices>}``.

``GET /health`` and ``GET /metadata`` (task, classes, model, limits).

Batching: every request is checked and preprocessed completely first (so one bad image fails only
its own request, with a 4xx, before anything is queued); its images then go into one asyncio queue.
A single worker takes up to ``max_batch`` queued images at a time and runs them on the model in one
thread, grouped by padded input size (:meth:`Predictor.predict` with ``bucketed=True``): an image's
answer does not depend on which other requests it was batched with.

Errors are JSON ``{"error": <slug>, "detail": <message>[, "index": <image>]}``:

=====  ==================================================================================
400    malformed JSON, bad base64, bytes that are no image / corrupt, URL not allowed / not fetched
413    body larger than ``max_body_bytes``, more than ``max_images`` images, an image of more
       than ``max_pixels`` pixels
415    Content-Type other than application/json
422    JSON without a non-empty ``input_data`` list of strings
503    queue full (more than ``max_queue`` images waiting)
=====  ==================================================================================
"""
import asyncio
import base64
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from .formats import det_instances, encode_png, named_instances, seg_label_map
from .inputs import ImageError, decode_base64, is_url

#: Bodies up to this size are read (and dropped) before a 413, so that the client gets the answer
#: instead of a reset connection; larger ones are refused without reading them.
DRAIN_CAP = 256 << 20


@dataclass
class ServerSettings:
    max_batch: int = 8
    max_images: int = 16
    max_body_bytes: int = 32 << 20
    max_pixels: int = 25_000_000
    max_queue: int = 256
    batch_wait_ms: float = 2.0
    score_thr: float = 0.3
    allow_urls: bool = False
    url_timeout_s: float = 10.0
    preprocess_threads: int = 2


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, index: Optional[int] = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.index = status, error, detail, index

    def body(self) -> Dict[str, Any]:
        out = {'error': self.error, 'detail': self.detail}
        if self.index is not None:
            out['index'] = self.index
        return out


class BatchingWorker:
    """One asyncio queue and one worker running ``run_fn(items) -> results`` in a single thread.

    ``submit(items)`` queues the items of one request and returns their results (or raises the
    first item's exception). Up to ``max_batch`` items, from any requests, go to one ``run_fn`` call;
    the worker waits at most ``wait_s`` for more after the first item. ``run_fn`` returns one result
    or an ``Exception`` per item.
    """

    def __init__(self, run_fn: Callable[[List[Any]], List[Any]], max_batch: int = 8, max_queue: int = 256,
                 wait_s: float = 0.002):
        self.run_fn, self.max_batch, self.max_queue, self.wait_s = run_fn, max(1, max_batch), max_queue, wait_s
        self.queue: Optional[asyncio.Queue] = None
        self.task: Optional[asyncio.Task] = None
        self.executor: Optional[ThreadPoolExecutor] = None
        self.stats = dict(runs=0, images=0, largest=0)

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='model')
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    @property
    def queued(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    async def submit(self, items: Sequence[Any]) -> List[Any]:
        if self.queued + len(items) > self.max_queue:
            raise ApiError(503, 'busy', f'{self.queued} images are queued (limit {self.max_queue}); retry later')
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            fut = loop.create_future()
            self.queue.put_nowait((item, fut))
            futures.append(fut)
        results = await asyncio.gather(*futures, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return list(results)

    async def _collect(self) -> List[Any]:
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self.executor, self._run_isolated, items)
            except Exception as e:  # noqa: BLE001  never let the worker die
                results = [e] * len(items)
            for (_, fut), res in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    def _run_isolated(self, items: List[Any]) -> List[Any]:
        """``run_fn`` on the batch; if it raises, item by item, so only the failing ones fail."""
        try:
            results = self.run_fn(items)
        except Exception:  # noqa: BLE001
            if len(items) == 1:
                raise
            results = []
            for item in items:
                try:
                    results.append(self.run_fn([item])[0])
                except Exception as e:  # noqa: BLE001
                    results.append(e)
        return results


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlparse(newurl).scheme.lower() not in ('http', 'https'):
            raise urllib.error.URLError(f'redirect to a non-http(s) URL refused: {newurl}')
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_url(url: str, limit: int, timeout: float, index: int) -> bytes:
    """GET an http(s) URL, at most ``limit`` bytes (only when the server allows URLs)."""
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ('http', 'https'):
        raise ApiError(400, 'bad_url', f'input_data[{index}]: only http and https URLs are fetched, not {scheme}://',
                       index)
    try:
        req = urllib.request.Request(url, headers={'User-Agent': 'swin_dense-serve'})
        opener = urllib.request.build_opener(_HttpOnlyRedirects())
        with opener.open(req, timeout=timeout) as r:  # scheme checked above, redirects too
            data = r.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ApiError(400, 'url_fetch_failed', f'input_data[{index}]: fetching {url} failed ({e})', index) from None
    if len(data) > limit:
        raise ApiError(413, 'body_too_large', f'input_data[{index}]: {url} is larger than {limit} bytes', index)
    return data


def create_app(predictor, settings: Optional[ServerSettings] = None):
    """The FastAPI app serving ``predictor`` (see the module doc for the API)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    settings = settings or ServerSettings()
    classes = list(predictor.classes)
    task = predictor.task
    started = time.time()
    counters = dict(requests=0, images=0, client_errors=0, server_errors=0)

    def run_model(datas: List[Dict[str, Any]]) -> List[Any]:
        samples = predictor.predict(datas, bucketed=True)
        out = []
        for sample in samples:
            if task == 'det':
                out.append(named_instances(det_instances(sample, settings.score_thr), classes))
            else:
                label = seg_label_map(sample)
                out.append(dict(height=int(label.shape[0]), width=int(label.shape[1]), classes=classes,
                                label_png=base64.b64encode(encode_png(label)).decode('ascii')))
        return out

    worker = BatchingWorker(run_model, settings.max_batch, settings.max_queue, settings.batch_wait_ms / 1000.0)
    pre_pool = ThreadPoolExecutor(max_workers=max(1, settings.preprocess_threads), thread_name_prefix='preprocess')

    orig_run = worker.run_fn

    def counted_run(datas):
        sizes: Dict[Any, int] = {}
        for d in datas:
            key = predictor.bucket_key(d)
            sizes[key] = sizes.get(key, 0) + 1
        worker.stats['runs'] += 1
        worker.stats['images'] += len(datas)
        worker.stats['largest'] = max(worker.stats['largest'], max(sizes.values()))
        return orig_run(datas)

    worker.run_fn = counted_run

    @asynccontextmanager
    async def lifespan(app):
        await worker.start()
        try:
            yield
        finally:
            await worker.stop()
            pre_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title='swin_dense inference', version='1', lifespan=lifespan,
                  description=f'{predictor.describe()["task"]} with {type(predictor.model).__name__}')
    app.state.predictor = predictor
    app.state.settings = settings
    app.state.worker = worker

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        counters['client_errors' if exc.status < 500 else 'server_errors'] += 1
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        slug = {404: 'not_found', 405: 'method_not_allowed'}.get(exc.status_code, 'http_error')
        return JSONResponse({'error': slug, 'detail': str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, 'headers', None))

    @app.exception_handler(Exception)
    async def _internal_error(request, exc):
        counters['server_errors'] += 1
        return JSONResponse({'error': 'internal', 'detail': f'{type(exc).__name__}: {exc}'}, status_code=500)

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        declared = request.headers.get('content-length')
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                raise ApiError(400, 'bad_request', f'invalid Content-Length {declared!r}') from None
            if declared_n > limit:
                if declared_n <= DRAIN_CAP:
                    async for _ in request.stream():
                        pass
                raise ApiError(413, 'body_too_large', f'request body of {declared_n} bytes is larger than the '
                                                      f'limit of {limit} bytes')
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                if size <= DRAIN_CAP:
                    async for chunk2 in request.stream():
                        size += len(chunk2)
                        if size > DRAIN_CAP:
                            break
                raise ApiError(413, 'body_too_large', f'request body is larger than the limit of {limit} bytes')
            parts.append(chunk)
        return b''.join(parts)

    def prepare_all(items: List[str]) -> List[Dict[str, Any]]:
        datas = []
        for i, text in enumerate(items):
            name = f'input_data[{i}]'
            try:
                if is_url(text):
                    if not settings.allow_urls:
                        raise ApiError(400, 'url_not_allowed',
                                       f'{name} is a URL; this server does not fetch URLs (send the image itself, '
                                       f'base64-encoded, or start the server with --allow-urls)', i)
                    data = fetch_url(text.strip(), settings.max_body_bytes, settings.url_timeout_s, i)
                else:
                    data = decode_base64(text, name)
                img = predictor.decode(data, name, max_pixels=settings.max_pixels)
                datas.append(predictor.prepare(img))
            except ImageError as e:
                raise ApiError(e.status, e.reason, str(e), i) from None
        return datas

    @app.post('/score')
    async def score(request: Request):
        ctype = request.headers.get('content-type', '')
        if ctype.split(';')[0].strip().lower() != 'application/json':
            raise ApiError(415, 'unsupported_media_type',
                           f'Content-Type must be application/json, got {ctype or "none"!r}')
        body = await read_body(request)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, 'malformed_json', f'the body is not valid JSON ({e})') from None
        if not isinstance(payload, dict) or 'input_data' not in payload:
            raise ApiError(422, 'bad_request', 'expected a JSON object {"input_data": [<base64 image>, ...]}')
        items = payload['input_data']
        if not isinstance(items, list) or not items:
            raise ApiError(422, 'bad_request', '"input_data" must be a non-empty list of base64-encoded images')
        if len(items) > settings.max_images:
            raise ApiError(413, 'too_many_images',
                           f'{len(items)} images in one request; the limit is {settings.max_images}')
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ApiError(422, 'bad_request', f'input_data[{i}] is a {type(item).__name__}, '
                                                   f'not a base64 string', i)
        loop = asyncio.get_running_loop()
        datas = await loop.run_in_executor(pre_pool, prepare_all, items)
        results = await worker.submit(datas)
        counters['requests'] += 1
        counters['images'] += len(items)
        return JSONResponse(results)

    @app.get('/health')
    async def health():
        return {'status': 'ok', 'task': predictor.describe()['task'], 'queued': worker.queued,
                'uptime_s': round(time.time() - started, 1), **counters,
                'batches': dict(worker.stats)}

    @app.get('/metadata')
    async def metadata():
        info = predictor.describe()
        info.update(
            score_thr=settings.score_thr if task == 'det' else None,
            limits=dict(max_body_bytes=settings.max_body_bytes, max_images_per_request=settings.max_images,
                        max_pixels_per_image=settings.max_pixels, max_batch=settings.max_batch,
                        max_queue=settings.max_queue, urls_allowed=settings.allow_urls),
            request={'method': 'POST', 'path': '/score', 'content_type': 'application/json',
                     'body': {'input_data': ['<base64-encoded image file: jpg, png, bmp, tif, webp>']}},
            response=('list (one entry per image) of lists of {"label", "label_id", "score", '
                      '"box": [x1, y1, x2, y2], "mask": COCO RLE}') if task == 'det' else
                     ('list (one entry per image) of {"height", "width", "classes", '
                      '"label_png": base64 PNG of class indices}'))
        return info

    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free port, see ``getsockname()``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: str, checkpoint: str, host: str = '127.0.0.1', port: int = 8080, device: str = 'cpu',
          settings: Optional[ServerSettings] = None, cfg_options: Optional[Dict] = None,
          log_level: str = 'info', access_log: bool = True) -> None:
    """Load the model (failing at once on a bad config / checkpoint), then serve until stopped."""
    import uvicorn

    from .predictor import Predictor
    settings = settings or ServerSettings()
    t0 = time.time()
    predictor = Predictor(config, checkpoint, device=device, cfg_options=cfg_options)
    app = create_app(predictor, settings)
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    shown_host = f'[{host}]' if ':' in host else host
    info = predictor.describe()
    print(f'[serve] {info["task"]} model {info["model"]} ({len(predictor.classes)} classes) loaded in '
          f'{time.time() - t0:.1f} s; limits {json.dumps(asdict(settings))}', flush=True)
    print(f'[serve] listening on http://{shown_host}:{actual_port} (POST /score, GET /health, GET /metadata)',
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=access_log, timeout_keep_alive=10,
                                           server_header=False))
    server.run(sockets=[sock])
    print('[serve] stopped', file=sys.stderr, flush=True)


__all__ = ['ServerSettings', 'ApiError', 'BatchingWorker', 'create_app', 'serve', 'bind_socket', 'fetch_url']
