#!/usr/bin/env python
"""Serve a detector or segmentor over HTTP (FastAPI + uvicorn).

    python tools/serve.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 8080] [--max-batch 8]
                          [--device cpu] [--score-thr 0.3] [--max-images 16] [--max-body-mb 32]
                          [--max-pixels 25000000] [--allow-urls] [--cfg-options k=v ...]

POST /score {"input_data": [<base64 image>, ...]} -> one JSON entry per image; GET /health;
GET /metadata. Concurrent requests are batched (up to --max-batch images per forward pass).
--port 0 picks a free port; the line "[serve] listening on http://HOST:PORT" on stdout says which.
URLs in input_data are refused unless --allow-urls (then the server fetches http/https URLs: only
enable it where the server may reach whatever a client names). See docs/inference.md.
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
    p.add_argument('checkpoint', help='checkpoint of that model')
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
    p.add_argument('--max-queue', type=int, default=256, help='most images waiting for the model (503 above)')
    p.add_argument('--allow-urls', action='store_true', help='fetch http(s) URLs given in input_data')
    p.add_argument('--log-level', default='info', choices=['critical', 'error', 'warning', 'info', 'debug'])
    p.add_argument('--no-access-log', action='store_true', help='do not log every request')
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
    from swin_dense.engine import safe_load
    from swin_dense.inference import PredictorError
    from swin_dense.inference.server import ServerSettings, serve
    safe_load.install()  # the checkpoint is read with torch.load(weights_only=True): allow mmengine's types
    settings = ServerSettings(max_batch=args.max_batch, max_images=args.max_images,
                              max_body_bytes=int(args.max_body_mb * (1 << 20)), max_pixels=args.max_pixels,
                              max_queue=args.max_queue, batch_wait_ms=args.batch_wait_ms, score_thr=args.score_thr,
                              allow_urls=args.allow_urls)
    try:
        serve(args.config, args.checkpoint, host=args.host, port=args.port, device=args.device, settings=settings,
              cfg_options=args.cfg_options, log_level=args.log_level, access_log=not args.no_access_log)
    except PredictorError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except OSError as e:  # port in use, bad address
        print(f'error: cannot listen on {args.host}:{args.port} ({e})', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
