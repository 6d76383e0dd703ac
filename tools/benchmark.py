#!/usr/bin/env python
"""Speed, memory and agreement of swin_dense's SwinTransformerV2 against timm and mmpretrain.

Every implementation is built with the same architecture and loaded with the *same* weights: a
seeded random state dict in this package's keys is written into timm's and mmpretrain's layouts,
loaded there (strictly), and read back through ``swin_dense.checkpoint.to_backbone_state_dict`` with
layout 'timm' / 'mmpretrain', which must give the original tensors bit for bit. The stage outputs
are then compared (max abs difference per stage) and each implementation is timed in the same
process, interleaved, after warm-up.

    python tools/benchmark.py --arch tiny --window 16 --sizes 512x512,800x1344 --repeats 10
    python tools/benchmark.py --mode train --sizes 512x512          # with_cp off and on
    python tools/benchmark.py --impls swin_dense --sizes 512x768 --profile 25
    python tools/benchmark.py --arch large --sizes 512x512 --chunk-sweep --repeats 3    # sequential mode's cost

This file is the command line only; the benchmark is the package ``swin_dense.benchmark``, whose
modules state its conventions (weights: ``weights``; timm and mmpretrain settings: ``peers``; time
and memory: ``measurement``; agreement: ``agreement``). docs/benchmarks.md has them all, with the
results. timm, mmpretrain and matplotlib are optional: ``pip install swin_dense[bench]``.
"""
import argparse
import json
import os
import resource
import sys
from typing import Dict, List, Optional, Sequence

# Quiet kineto's "gpuGetDeviceCount failed" errors when torch.profiler runs without a GPU.
os.environ.setdefault('KINETO_LOG_LEVEL', '5')

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from swin_dense.arch import ARCH_ZOO, per_stage  # noqa: E402
from swin_dense.benchmark.chunk_sweep import (DEFAULT_SETTINGS, parse_chunks, parse_settings, run_sweep,  # noqa: E402
                                              sweep_markdown, trace_sweep)
from swin_dense.benchmark.peers import DEFAULT_IMPLS, IMPLS, make_impls, stage_maps  # noqa: E402
from swin_dense.benchmark.profile import profile_swin_dense, time_parts_swin_dense  # noqa: E402
from swin_dense.benchmark.report import environment, format_row, markdown_table, plot, write_json  # noqa: E402
from swin_dense.benchmark.runner import benchmark_input, cp_settings, parse_sizes, run_size  # noqa: E402
from swin_dense.benchmark.weights import random_state_dict  # noqa: E402
from swin_dense.models import SwinTransformerV2  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', default='tiny', choices=sorted(ARCH_ZOO), help='named architecture')
    p.add_argument('--arch-json', help='architecture as JSON: {"embed_dims":..,"depths":[..],"num_heads":[..]} '
                                       '(overrides --arch)')
    p.add_argument('--window', type=int, default=16, help='window size (all stages)')
    p.add_argument('--sizes', default='512x512,800x1344,1536x1536', help='comma-separated HxW input sizes')
    p.add_argument('--mode', default='forward',
                   help="'forward' (eval, no grad), 'train' (forward + backward), or 'forward,train'")
    p.add_argument('--impls', default=','.join(DEFAULT_IMPLS), help=f'comma-separated subset of {",".join(IMPLS)}')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16'), help='bf16 = torch.autocast(bfloat16)')
    p.add_argument('--with-cp', nargs='?', const='on', default=None, choices=('off', 'on', 'both'),
                   help='activation checkpointing in train mode: off, on (bare flag) or both '
                        '(default: both for train; forward never checkpoints)')
    p.add_argument('--attn-chunk', default='0',
                   help='swin_dense attn_chunk_size: windows per attention call, one value or one per stage '
                        '(e.g. 16,16,0,0); 0 is off (the peers have no sequential mode)')
    p.add_argument('--mlp-chunk', default='0', help='swin_dense mlp_chunk_size, as --attn-chunk')
    p.add_argument('--chunk-sweep', nargs='?', const=DEFAULT_SETTINGS, metavar='ATTN/MLP;...',
                   help='instead of comparing: swin_dense\'s train step at the first size under each chunk setting '
                        '(ATTN and MLP as --attn-chunk / --mlp-chunk, settings separated by ";"; bare flag: '
                        f'{DEFAULT_SETTINGS}) and each --with-cp setting: the minimum and median time of --repeats '
                        'interleaved rounds and the measured peak; with --traced, each peak traced instead')
    p.add_argument('--traced', action='store_true',
                   help='with --chunk-sweep: trace each setting\'s peak with fake tensors (shapes only: no compute, '
                        'no time, no memory), for sizes this machine cannot run')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--repeats', type=int, default=10, help='timed runs per implementation and size')
    p.add_argument('--warmup', type=int, default=2,
                   help='untimed runs per implementation and size first (at least 1: the first fills caches)')
    p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: leave torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-check', action='store_true', help='skip the agreement check')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    p.add_argument('--memory-only', action='store_true',
                   help='one step per implementation: its peak memory (caches it fills included), no timing and '
                        'no agreement check; for sizes where a step takes minutes')
    p.add_argument('--mem-limit-gb', type=float, default=0,
                   help='cap this process\'s data segment (RLIMIT_DATA: heap and private anonymous mappings, '
                        'not the shared libraries), so that running out of memory on CPU is an oom row instead of '
                        'the kernel\'s OOM killer; leave ~1.5 GB for the imports')
    p.add_argument('--json', dest='json_out', help='write all rows (and the environment) to this JSON file')
    p.add_argument('--plot', help='write a PNG of time and memory against input size')
    p.add_argument('--markdown', action='store_true', help='print a markdown table at the end')
    p.add_argument('--profile', type=int, default=0, metavar='TOP',
                   help='instead of comparing: profile swin_dense at the first size and print the TOP ops')
    p.add_argument('--profile-shapes', action='store_true', help='group the profile by input shapes')
    p.add_argument('--time-parts', action='store_true',
                   help='instead of comparing: time the parts of one swin_dense forward at the first size '
                        '(MLP, window attention, output projection, patch merging, the rest) with their GFLOP')
    p.add_argument('--verbose', action='store_true', help='print tracebacks of failing implementations')
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.mode.split(',') if m.strip()]
    if not args.modes or any(m not in ('forward', 'train') for m in args.modes):
        p.error(f'--mode must be forward, train or forward,train; got {args.mode!r}')
    args.impl_names = [i.strip() for i in args.impls.split(',') if i.strip()]
    unknown = [i for i in args.impl_names if i not in IMPLS]
    if unknown or not args.impl_names:
        p.error(f'unknown --impls {unknown}; choose from {IMPLS}')
    if 'swin_dense' not in args.impl_names and not args.memory_only:
        args.impl_names.insert(0, 'swin_dense')  # the reference for agreement and ratios
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.size_list = parse_sizes(args.sizes)
    args.arch_dict = json.loads(args.arch_json) if args.arch_json else dict(ARCH_ZOO[args.arch])
    num_stages = len(args.arch_dict['depths'])
    try:
        args.attn_chunk = per_stage(parse_chunks(args.attn_chunk), num_stages, '--attn-chunk')
        args.mlp_chunk = per_stage(parse_chunks(args.mlp_chunk), num_stages, '--mlp-chunk')
        args.sweep = parse_settings(args.chunk_sweep, num_stages) if args.chunk_sweep else None
    except ValueError as err:
        p.error(str(err))
    if args.traced and not args.sweep:
        p.error('--traced goes with --chunk-sweep')
    if args.repeats < 1 or args.warmup < 1:
        p.error('--repeats and --warmup must be >= 1')
    if args.memory_only and args.no_memory:
        p.error('--memory-only and --no-memory exclude each other')
    if args.memory_only:
        args.no_check = True
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mem_limit_gb:
        limit = int(args.mem_limit_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    arch = args.arch_dict
    arch_name = args.arch if not args.arch_json else 'custom'
    SwinTransformerV2(arch=arch)  # validates the arch with a clear message

    def log(msg: str) -> None:
        print(msg, flush=True)

    env = environment()
    log(f'# swin_dense benchmark: arch {arch_name} {arch}, window {args.window}, {args.device}, {args.dtype}, '
        f'batch {args.batch}, attn chunks {args.attn_chunk}, MLP chunks {args.mlp_chunk}')
    log('# ' + ', '.join(f'{k} {v}' for k, v in env.items()))

    if args.profile:
        log(profile_swin_dense(arch, args, args.size_list[0], args.profile))
        return []
    if args.time_parts:
        log(time_parts_swin_dense(arch, args, args.size_list[0]))
        return []
    if args.sweep:
        return chunk_sweep(arch, args, log)

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    template = SwinTransformerV2(arch=arch, window_size=args.window, out_indices=tuple(range(len(arch['depths']))))
    state = random_state_dict(template, args.seed)
    del template
    impls = make_impls(args.impl_names, arch, args.window, state, device)

    all_rows: List[Dict] = []
    for mode in args.modes:
        for size in args.size_list:
            for with_cp in cp_settings(mode, args.with_cp):
                log(f'\n## {mode} {size[0]}x{size[1]}' + (f' with_cp={with_cp}' if mode == 'train' else '')
                    + f'  (stage maps {stage_maps(*size, len(arch["depths"]))})')
                rows = run_size(impls, size, mode, with_cp, args, log)
                for row in rows:
                    row.update(arch=arch_name, arch_dict=arch, window=args.window)
                    log(format_row(row))
                all_rows.extend(rows)

    if args.markdown:
        log('\n' + markdown_table(all_rows))
    if args.json_out:
        write_json(args.json_out, env, args.argv, all_rows)
        log(f'wrote {args.json_out}')
    if args.plot:
        plot(all_rows, args.plot, f'SwinV2 {arch_name}, window {args.window}, {args.device} {args.dtype}, '
                                  f'batch {args.batch}, {torch.get_num_threads()} thread(s), torch {torch.__version__}')
        log(f'wrote {args.plot}')
    return all_rows


def chunk_sweep(arch: Dict, args: argparse.Namespace, log) -> List[Dict]:
    """--chunk-sweep: the table of every chunk and checkpointing setting at the first size (see --help)."""
    size, with_cp = args.size_list[0], cp_settings('train', args.with_cp)
    if args.traced:
        rows = trace_sweep(dict(arch=arch, window_size=args.window, drop_path_rate=0.0),
                           (args.batch, 3, *size), args.sweep, with_cp, log)
    else:
        torch.manual_seed(args.seed)
        backbone = SwinTransformerV2(arch=arch, window_size=args.window, drop_path_rate=0.0).to(args.device)
        backbone.load_state_dict(random_state_dict(backbone, args.seed))
        x = benchmark_input(size, args.batch, args.seed, torch.device(args.device))
        rows = run_sweep(backbone, x, args.sweep, with_cp, args.repeats, args.warmup, log)
    log(f'\n## chunk sweep, train step, {size[0]}x{size[1]}, batch {args.batch}'
        + (' (traced)' if args.traced else f', {args.repeats} rounds after {args.warmup} warm-up step(s)'))
    log(sweep_markdown(rows))
    if args.json_out:
        write_json(args.json_out, environment(), args.argv, rows)
        log(f'wrote {args.json_out}')
    return rows


if __name__ == '__main__':
    main()
