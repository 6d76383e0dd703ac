#!/usr/bin/env python
"""Serve a detector or segmentor over HTTP (FastAPI + uvicorn).

    python tools/serve.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 8080] [--max-batch 8]
                          [--device cpu] [--score-thr 0.3] [--max-images 16] [--max-body-mb 32]
                          [--max-pixels 25000000] [--max-request-pixels 50000000]
                          [--max-inflight-pixels 100000000] [--body-timeout-s 30] [--head-timeout-s 10]
                          [--max-connections 256] [--allow-urls [--url-timeout-s 10]
                          [--allow-url-network CIDR ...]] [--docs] [--eager] [--cfg-options k=v ...]

POST /score {"input_data": [<base64 image>, ...]} -> one JSON entry per image; GET /health;
GET /metadata. Concurrent requests are batched (up to --max-batch images per forward pass).
--port 0 picks a free port; the line "[serve] listening on http://HOST:PORT" on stdout says which.
URLs in input_data are refused unless --allow-urls (then the server fetches http/https URLs: only
enable it where the server may reach whatever a client names: private, loopback and link-local
addresses stay refused unless --allow-url-network names them). With SWIN_DENSE_API_KEY set (one key or
several, comma-separated), every path but /health needs "Authorization: Bearer <key>". A PyTorch
checkpoint runs on the CPU in inference mode (conv-BN folding, torchvision's RoIAlign, channels-last RoI
heads; --eager turns it off); an exported model.onnx runs in ONNX Runtime. See docs/inference.md.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it
warnings.filterwarnings('ignore', message='To copy construct from a tensor')  # mmdet's mask head, harmless


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='HTTP inference endpoint')
    p.add_argument('config', help='config file (mmdet or mmseg)')
    p.add_argument('checkpoint', help='checkpoint of that model: path, URL, hf-hub:ORG/NAME or .onnx file')
    p.add_argument('--host', default='127.0.0.1', help='address to listen on (default 127.0.0.1: this machine only)')
    p.add_argument('--port', type=int, default=8080, help='port (0: any free port)')
    p.add_argument('--max-batch', type=int, default=8, help='most images per forward pass (across requests)')
    p.add_argument('--batch-wait-ms', type=float, default=2.0,
                   help='how long the worker waits for more images after the first of a batch')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--score-thr', type=float, default=0.3, help='detections below this score are not returned')
    p.add_argument('--max-images', type=int, default=16, help='most images in one request (413 above)')
    p.add_argument('--max-body-mb', type=float, default=32, help='largest request body in MiB (413 above)')
    p.add_argument('--max-pixels', type=int, default=25_000_000, help='largest image, width x height (413 above)')
    p.add_argument('--max-request-pixels', type=int, default=50_000_000,
                   help='most pixels of all images of one request (413 above)')
    p.add_argument('--max-inflight-pixels', type=int, default=100_000_000,
                   help='most pixels of the images of all requests being worked on (503 above)')
    p.add_argument('--max-queue', type=int, default=256, help='most images waiting for the model (503 above)')
    p.add_argument('--body-timeout-s', type=float, default=30, help='time for a request body to arrive (408 after)')
    p.add_argument('--head-timeout-s', type=float, default=10,
                   help='time for a request line and headers to arrive (the connection is closed after)')
    p.add_argument('--max-connections', type=int, default=256,
                   help='open connections and requests at once (503 above; uvicorn\'s limit_concurrency)')
    p.add_argument('--allow-urls', action='store_true', help='fetch http(s) URLs given in input_data')
    p.add_argument('--url-timeout-s', type=float, default=10, help='deadline of one URL fetch, redirects included')
    p.add_argument('--allow-url-network', nargs='+', default=[], metavar='CIDR',
                   help='private / loopback networks URLs may reach (e.g. 10.0.0.0/8); public addresses always')
    p.add_argument('--docs', action='store_true',
                   help='serve /docs and /redoc (they load JavaScript from a CDN; /openapi.json is always served)')
    p.add_argument('--log-level', default='info', choices=['critical', 'error', 'warning', 'info', 'debug'])
    p.add_argument('--no-access-log', action='store_true', help='do not log every request')
    p.add_argument('--eager', action='store_true',
                   help='run a PyTorch checkpoint exactly as built, without inference mode (docs/inference.md)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        print(f"error: tools/serve.py needs fastapi and uvicorn ({e}): pip install -e '.[serve]' in the checkout "
              "(tools/install.sh installs them)", file=sys.stderr)
        return 2
    import os

    from swin_dense.engine import safe_load
    from swin_dense.inference import PredictorError
    from swin_dense.inference.auth import API_KEY_ENV, parse_api_keys
    from swin_dense.inference.server import ServerSettings, serve
    from swin_dense.cli import checkpoint_argument
    safe_load.install()  # the checkpoint is read with torch.load(weights_only=True): allow mmengine's types
    checkpoint = checkpoint_argument(args.checkpoint)
    settings = ServerSettings(max_batch=args.max_batch, max_images=args.max_images,
                              max_body_bytes=int(args.max_body_mb * (1 << 20)), max_pixels=args.max_pixels,
                              max_request_pixels=args.max_request_pixels, max_inflight_pixels=args.max_inflight_pixels,
                              max_queue=args.max_queue, batch_wait_ms=args.batch_wait_ms, score_thr=args.score_thr,
                              allow_urls=args.allow_urls, url_timeout_s=args.url_timeout_s,
                              url_allow_networks=tuple(args.allow_url_network), body_timeout_s=args.body_timeout_s,
                              head_timeout_s=args.head_timeout_s, max_connections=args.max_connections,
                              docs=args.docs)
    try:
        serve(args.config, checkpoint, host=args.host, port=args.port, device=args.device, settings=settings,
              cfg_options=args.cfg_options, log_level=args.log_level, access_log=not args.no_access_log,
              api_keys=parse_api_keys(os.environ.get(API_KEY_ENV, '')), inference_mode=not args.eager)
    except ValueError as e:  # a bad --allow-url-network
        print(f'error: {e}', file=sys.stderr)
        return 2
    except PredictorError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except OSError as e:  # port in use, bad address
        print(f'error: cannot listen on {args.host}:{args.port} ({e})', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
