"""A small client for ``tools/serve.py``: score images, or measure the endpoint's throughput.

    python -m swin_dense.inference.client http://127.0.0.1:8080 IMAGE_OR_FOLDER [--clients 8]
        [--requests 10] [--images-per-request 1] [--out answers.json]

Every client thread sends ``--requests`` requests of ``--images-per-request`` images (taken in turn
from the folder, searched recursively); the summary gives images/s over the whole run, request
latency (median, 95th percentile) and any errors. Only the standard library is used.
"""
import argparse
import base64
import http.client
import json
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Sequence, Tuple

from .inputs import collect_inputs


def post_score(url: str, images: Sequence[bytes], timeout: float = 300) -> Tuple[int, Any]:
    """POST raw image bytes to ``url``/score; (status, decoded JSON)."""
    parts = urllib.parse.urlparse(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == 'https' else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        body = json.dumps({'input_data': [base64.b64encode(im).decode('ascii') for im in images]})
        conn.request('POST', parts.path.rstrip('/') + '/score', body=body,
                     headers={'Content-Type': 'application/json'})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None
    finally:
        conn.close()


def load_test(url: str, images: List[bytes], clients: int = 8, requests: int = 10,
              per_request: int = 1) -> Dict[str, Any]:
    def client(c: int):
        out = []
        for r in range(requests):
            k = (c * requests + r) * per_request
            batch = [images[(k + j) % len(images)] for j in range(per_request)]
            t0 = time.perf_counter()
            status, body = post_score(url, batch)
            out.append((status, time.perf_counter() - t0, body))
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [x for res in pool.map(client, range(clients)) for x in res]
    seconds = time.perf_counter() - t0
    lat = sorted(r[1] for r in results)
    ok = [r for r in results if r[0] == 200]
    return dict(requests=len(results), ok=len(ok), images=len(ok) * per_request, seconds=round(seconds, 2),
                images_per_s=round(len(ok) * per_request / seconds, 2),
                latency_p50_s=round(lat[len(lat) // 2], 3), latency_p95_s=round(lat[int(0.95 * (len(lat) - 1))], 3),
                errors=[r[2] for r in results if r[0] != 200][:5])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description='Score images with a running tools/serve.py, or load-test it')
    p.add_argument('url', help='server address, e.g. http://127.0.0.1:8080')
    p.add_argument('input', help='an image, a folder or a list file')
    p.add_argument('--clients', type=int, default=1, help='concurrent clients')
    p.add_argument('--requests', type=int, default=1, help='requests per client')
    p.add_argument('--images-per-request', type=int, default=1)
    p.add_argument('--out', help='write the answers of a single request to this JSON file')
    args = p.parse_args(argv)
    images = [open(im.path, 'rb').read() for im in collect_inputs(args.input)]
    if args.out:
        status, body = post_score(args.url, images[:args.images_per_request])
        with open(args.out, 'w') as f:
            json.dump(body, f)
        print(f'HTTP {status}; answer written to {args.out}')
        return 0 if status == 200 else 1
    # one warm-up request (first-call allocations), not counted
    post_score(args.url, images[:1])
    summary = load_test(args.url, images, args.clients, args.requests, args.images_per_request)
    print(json.dumps(summary, indent=1))
    return 0 if summary['ok'] == summary['requests'] else 1


if __name__ == '__main__':
    sys.exit(main())
