"""The online endpoint: a FastAPI app around one predictor (:func:`~swin_dense.inference.loading.load_predictor`).

``POST /score`` with ``{"input_data": [<base64 image>, ...]}`` (``Content-Type: application/json``)
answers a JSON list, one entry per image:

* detection: a list of ``{"label": <class name>, "label_id": <index>, "score", "box": [x1, y1, x2, y2],
  "mask": <COCO RLE, counts as str>}`` with ``score >= score_thr``;
* segmentation: ``{"height", "width", "classes": [<name of label 0>, ...], "label_png": <base64 PNG
  of class indices>}``.

``GET /health`` (also ``HEAD``; always open) and ``GET /metadata`` (task, classes, model, limits).
With API keys (``SWIN_DENSE_API_KEY``, :mod:`.auth`) every path but ``/health`` needs
``Authorization: Bearer <key>``. ``/docs`` and ``/redoc`` (which load JavaScript from a CDN) are off
unless ``docs=True``; ``/openapi.json`` describes the API (:mod:`.schema`).

Batching: every request is checked and preprocessed completely first (so one bad image fails only
its own request, with a 4xx, before anything is queued); its images then go into one asyncio queue.
A single worker takes up to ``max_batch`` queued images at a time and runs them on the model in one
thread, grouped by padded input size (``predict(bucketed=True)``): an image's answer does not depend
on which other requests it was batched with.

Memory: image sizes are read from the headers before anything is decoded; a request whose images
have more than ``max_request_pixels`` in all is refused (413), and one that does not fit in
``max_inflight_pixels`` beside the requests being worked on waits for nothing: 503. Time: the body
must arrive within ``body_timeout_s`` (408) and the request head within ``head_timeout_s``
(:mod:`.connections`); a client that goes away mid-body is logged in one line, and the work of a
request whose client has gone is dropped.

Errors are JSON ``{"error": <slug>, "detail": <message>[, "index": <image>]}`` (:data:`.schema.SCORE_ERRORS`
lists the statuses); no answer carries a traceback, a path or a library's source location (those go
to the server's log).
"""
import asyncio
import base64
import ipaddress
import json
import logging
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .budget import PixelBudget
from .fetch import FetchError, fetch_url, parse_networks
from .formats import det_instances, encode_png, named_instances, seg_label_map
from .inputs import ImageError, decode_base64, image_size, is_url

#: Bodies up to this size are read (and dropped) before a 413, so that the client gets the answer
#: instead of a reset connection; larger ones are refused without reading them.
DRAIN_CAP = 256 << 20
logger = logging.getLogger('swin_dense.serve')


@dataclass
class ServerSettings:
    """The server's limits (``tools/serve.py`` has a flag for each; docs/inference.md, "Limits", sizes them)."""
    max_batch: int = 8
    max_images: int = 16
    max_body_bytes: int = 32 << 20
    max_pixels: int = 25_000_000
    max_request_pixels: int = 50_000_000
    max_inflight_pixels: int = 100_000_000
    max_queue: int = 256
    batch_wait_ms: float = 2.0
    score_thr: float = 0.3
    allow_urls: bool = False
    url_timeout_s: float = 10.0
    url_allow_networks: Tuple[str, ...] = field(default_factory=tuple)
    url_threads: int = 4
    preprocess_threads: int = 2
    body_timeout_s: float = 30.0
    head_timeout_s: float = 10.0
    keep_alive_s: int = 10
    max_connections: int = 256
    docs: bool = False


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
    first item's exception); when the caller is cancelled (its client went away), its items that
    have not run yet are dropped. Up to ``max_batch`` items, from any requests, go to one ``run_fn`` call;
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
            batch = [(item, fut) for item, fut in await self._collect() if not fut.done()]  # drop abandoned requests
            if not batch:
                continue
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


class _ClientGone(Exception):
    """The client closed the connection before its request was answered."""


def create_app(predictor, settings: Optional[ServerSettings] = None, api_keys: Sequence[str] = ()):
    """The FastAPI app serving ``predictor`` (see the module doc for the API).

    Args:
        api_keys: when given, every path but ``/health`` needs ``Authorization: Bearer <key>`` (:mod:`.auth`).
    """
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    from .auth import BearerAuth
    from .schema import score_openapi

    settings = settings or ServerSettings()
    allowed_networks = parse_networks(settings.url_allow_networks)
    classes = list(predictor.classes)
    task = predictor.task
    started = time.time()
    counters = dict(requests=0, images=0, client_errors=0, server_errors=0, disconnected=0)
    budget = PixelBudget(settings.max_inflight_pixels)

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
    url_pool = ThreadPoolExecutor(max_workers=max(1, settings.url_threads), thread_name_prefix='fetch')

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
            url_pool.shutdown(wait=False, cancel_futures=True)

    docs = dict(docs_url='/docs', redoc_url='/redoc') if settings.docs else dict(docs_url=None, redoc_url=None)
    app = FastAPI(title='swin_dense inference', version='1', lifespan=lifespan, **docs,
                  description=f'{predictor.describe()["task"]} with {type(predictor.model).__name__}')
    if api_keys:
        app.add_middleware(BearerAuth, keys=list(api_keys))
    app.state.predictor = predictor
    app.state.settings = settings
    app.state.worker = worker
    app.state.budget = budget

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
        logger.error('internal error on %s %s', request.method, request.url.path, exc_info=exc)
        return JSONResponse({'error': 'internal', 'detail': 'internal server error (the server log has the details)'},
                            status_code=500)

    async def drain_and_refuse(request: Request, size: int, message: str) -> None:
        if size <= DRAIN_CAP:
            async for chunk in request.stream():
                size += len(chunk)
                if size > DRAIN_CAP:
                    break
        raise ApiError(413, 'body_too_large', message)

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        declared = request.headers.get('content-length')
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                raise ApiError(400, 'bad_request', f'invalid Content-Length {declared!r}') from None
            if declared_n > limit:
                await drain_and_refuse(request, 0, f'request body of {declared_n} bytes is larger than the '
                                                   f'limit of {limit} bytes')
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await drain_and_refuse(request, size, f'request body is larger than the limit of {limit} bytes')
            parts.append(chunk)
        return b''.join(parts)

    async def read_body_in_time(request: Request) -> bytes:
        try:
            async with asyncio.timeout(settings.body_timeout_s):
                return await read_body(request)
        except TimeoutError:
            raise ApiError(408, 'body_timeout', f'the request body did not arrive within '
                                                f'{settings.body_timeout_s:g} s') from None
        except ClientDisconnect:
            raise _ClientGone() from None

    def image_bytes(text: str, i: int) -> bytes:
        """input_data[i] as image bytes: base64 decoded, or a URL fetched (with opaque errors)."""
        name = f'input_data[{i}]'
        if not is_url(text):
            return decode_base64(text, name)
        if not settings.allow_urls:
            raise ApiError(400, 'url_not_allowed', f'{name} is a URL; this server does not fetch URLs (send the image '
                                                   f'itself, base64-encoded, or start the server with --allow-urls)', i)
        try:
            return fetch_url(text.strip(), settings.max_body_bytes, settings.url_timeout_s, allowed_networks)
        except FetchError as e:
            logger.info('input_data[%d]: URL not fetched: %s', i, e.why)
            raise ApiError(e.status, 'url_fetch_failed', f'{name}: the URL could not be fetched (refused, '
                                                         f'unreachable, too slow or too large)', i) from None

    def headers_of(items: List[str]) -> List[Tuple[bytes, int]]:
        """(image bytes, pixels from its header) per item; nothing is decoded yet."""
        out = []
        for i, text in enumerate(items):
            name = f'input_data[{i}]'
            try:
                data = image_bytes(text, i)
                width, height, _ = image_size(data, name)
            except ImageError as e:
                raise ApiError(e.status, e.reason, _client_message(e, text), i) from None
            if width * height > settings.max_pixels:
                raise ApiError(413, 'too_many_pixels', f'{name}: image is {width}x{height} = {width * height} pixels, '
                                                       f'more than the limit of {settings.max_pixels}', i)
            out.append((data, width * height))
        return out

    def _client_message(e: ImageError, text: str) -> str:
        """The error for the client; about fetched data, only its kind (the bytes may be an internal answer)."""
        return f'{e.name}: the fetched data is no usable image ({e.reason})' if is_url(text) else str(e)

    def prepare_all(items: List[str], images: List[Tuple[bytes, int]]) -> List[Dict[str, Any]]:
        datas = []
        for i, (text, (data, _)) in enumerate(zip(items, images)):
            name = f'input_data[{i}]'
            try:
                img = predictor.decode(data, name, max_pixels=settings.max_pixels)
            except ImageError as e:
                raise ApiError(e.status, e.reason, _client_message(e, text), i) from None
            try:
                datas.append(predictor.prepare(img))
            except Exception:  # noqa: BLE001  e.g. OpenCV on an extreme aspect ratio: the image's fault
                logger.info('input_data[%d]: the test pipeline failed on a %dx%d image', i, img.shape[1], img.shape[0],
                            exc_info=True)
                raise ApiError(400, 'unprocessable_image', f'{name}: the model\'s test pipeline cannot process this '
                                                           f'{img.shape[1]}x{img.shape[0]} image (extreme aspect ratio '
                                                           f'or size)', i) from None
        return datas

    async def answer(items: List[str]) -> List[Any]:
        loop = asyncio.get_running_loop()
        pool = url_pool if settings.allow_urls and any(is_url(t) for t in items) else pre_pool
        images = await loop.run_in_executor(pool, headers_of, items)
        pixels = sum(p for _, p in images)
        if pixels > settings.max_request_pixels:
            raise ApiError(413, 'too_many_pixels', f'the request\'s images have {pixels} pixels in all, more than the '
                                                   f'limit of {settings.max_request_pixels} per request')
        if not budget.reserve(pixels):
            raise ApiError(503, 'busy', f'the server is working on images of {budget.used} pixels; this request\'s '
                                        f'{pixels} do not fit in its budget of {budget.limit}: retry later')
        held = pixels
        try:
            prepared = loop.run_in_executor(pre_pool, prepare_all, items, images)
            try:
                datas = await asyncio.shield(prepared)
            except asyncio.CancelledError:
                # the thread decodes on after its client is gone: its pixels stay reserved until it ends
                prepared.add_done_callback(lambda _: budget.release(pixels))
                held = 0
                raise
            return await worker.submit(datas)
        finally:
            budget.release(held)

    async def client_gone(request: Request) -> None:
        """Returns when the client has closed the connection (the body is read by then)."""
        while (await request.receive())['type'] != 'http.disconnect':
            pass

    @app.post('/score', **score_openapi())
    async def score(request: Request):
        ctype = request.headers.get('content-type', '')
        if ctype.split(';')[0].strip().lower() != 'application/json':
            raise ApiError(415, 'unsupported_media_type',
                           f'Content-Type must be application/json, got {ctype or "none"!r}')
        try:
            body = await read_body_in_time(request)
        except _ClientGone:
            counters['disconnected'] += 1
            logger.info('client %s closed the connection during the request body', _client(request))
            return Response(status_code=400)  # nobody reads it
        try:
            payload = json.loads(body)
        except RecursionError:
            raise ApiError(400, 'malformed_json', 'the JSON body is nested too deeply') from None
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
        work = asyncio.ensure_future(answer(items))
        gone = asyncio.ensure_future(client_gone(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not work.done():
            work.cancel()
            counters['disconnected'] += 1
            logger.info('client %s went away before its answer: its work is dropped', _client(request))
            return Response(status_code=400)  # nobody reads it
        results = work.result()
        counters['requests'] += 1
        counters['images'] += len(items)
        return JSONResponse(results)

    @app.api_route('/health', methods=['GET', 'HEAD'])
    async def health():
        return {'status': 'ok', 'task': predictor.describe()['task'], 'queued': worker.queued,
                'inflight_pixels': budget.used, 'uptime_s': round(time.time() - started, 1), **counters,
                'batches': dict(worker.stats)}

    @app.get('/metadata')
    async def metadata():
        info = predictor.describe()
        info.update(
            score_thr=settings.score_thr if task == 'det' else None,
            limits=dict(max_body_bytes=settings.max_body_bytes, max_images_per_request=settings.max_images,
                        max_pixels_per_image=settings.max_pixels, max_pixels_per_request=settings.max_request_pixels,
                        max_inflight_pixels=settings.max_inflight_pixels, max_batch=settings.max_batch,
                        max_queue=settings.max_queue, urls_allowed=settings.allow_urls),
            request={'method': 'POST', 'path': '/score', 'content_type': 'application/json',
                     'body': {'input_data': ['<base64-encoded image file: jpg, png, bmp, tif, webp>']}},
            response=('list (one entry per image) of lists of {"label", "label_id", "score", '
                      '"box": [x1, y1, x2, y2], "mask": COCO RLE}') if task == 'det' else
                     ('list (one entry per image) of {"height", "width", "classes", '
                      '"label_png": base64 PNG of class indices}'))
        return info

    return app


def _client(request) -> str:
    return f'{request.client.host}:{request.client.port}' if request.client else '?'


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


def uvicorn_config(app, settings: ServerSettings, log_level: str = 'info', access_log: bool = True):
    """uvicorn's settings for ``app``: the connection limit, keep-alive and request-head deadline of ``settings``."""
    import uvicorn

    from .connections import head_deadline_protocol
    return uvicorn.Config(app, log_level=log_level, access_log=access_log, server_header=False,
                          timeout_keep_alive=settings.keep_alive_s, limit_concurrency=settings.max_connections,
                          http=head_deadline_protocol(settings.head_timeout_s))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only listens on this machine."""
    try:
        return all(ipaddress.ip_address(info[4][0].split('%')[0]).is_loopback
                   for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (socket.gaierror, ValueError):
        return False


def serve(config: str, checkpoint: str, host: str = '127.0.0.1', port: int = 8080, device: str = 'cpu',
          settings: Optional[ServerSettings] = None, cfg_options: Optional[Dict] = None,
          log_level: str = 'info', access_log: bool = True, api_keys: Sequence[str] = (),
          inference_mode: bool = True) -> None:
    """Load the model (failing at once on a bad config / checkpoint; PyTorch checkpoints on the CPU in
    inference mode, :mod:`.inference_mode`, unless ``inference_mode`` is False), then serve until stopped."""
    import uvicorn

    from .loading import load_predictor
    settings = settings or ServerSettings()
    parse_networks(settings.url_allow_networks)  # a bad network spec fails before the model loads
    t0 = time.time()
    predictor = load_predictor(config, checkpoint, device=device, cfg_options=cfg_options,
                               inference_mode=inference_mode)
    app = create_app(predictor, settings, api_keys=api_keys)
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    shown_host = f'[{host}]' if ':' in host else host
    info = predictor.describe()
    print(f'[serve] {info["task"]} model {info["model"]} ({len(predictor.classes)} classes) loaded in '
          f'{time.time() - t0:.1f} s ({predictor.runtime_summary()}); limits {json.dumps(asdict(settings))}; '
          f'{f"{len(api_keys)} API key(s) required" if api_keys else "no API key required"}', flush=True)
    if not api_keys and not is_loopback(host):
        print(f'[serve] warning: listening on {host} without an API key: anyone who can reach this machine can use '
              'the endpoint. Set SWIN_DENSE_API_KEY (docs/inference.md, "Authentication").', file=sys.stderr,
              flush=True)
    print(f'[serve] listening on http://{shown_host}:{actual_port} (POST /score, GET /health, GET /metadata)',
          flush=True)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level, access_log))
    server.run(sockets=[sock])
    print('[serve] stopped', file=sys.stderr, flush=True)


__all__ = ['ServerSettings', 'ApiError', 'BatchingWorker', 'create_app', 'serve', 'bind_socket', 'uvicorn_config',
           'is_loopback']
