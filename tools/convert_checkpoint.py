#!/usr/bin/env python
"""Convert a SwinV2 checkpoint of any public layout for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.

    python tools/convert_checkpoint.py SRC DST [--src-format auto|official|timm|hf|mmpretrain|simmim]
                                               [--pretrained-window-size 12,12,12,6] [--dst-format backbone|official]

SRC: ``.pth``/``.pt``/``.bin``/``.safetensors`` file or a Hugging Face model folder (config.json +
model.safetensors or pytorch_model.bin), read safely (tensors only; no pickled code runs). DST:
``.safetensors`` or a ``.pth`` holding ``{'state_dict': ..., 'meta': ...}``. Nothing is downloaded.
Prints the layout, the architecture, the pretrained window recorded in the meta, and which source
tensors were used or dropped and why; exits with status 1 and a message on a file it cannot convert.
"""
import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout without install

from swin_dense.checkpoint import CheckpointError, convert_checkpoint  # noqa: E402
from swin_dense.checkpoint.convert import DST_FORMATS  # noqa: E402
from swin_dense.checkpoint.layouts import LAYOUTS  # noqa: E402
from swin_dense.checkpoint.windows import parse_window_arg  # noqa: E402


def _window_arg(text: str) -> List[int]:
    try:
        return parse_window_arg(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint file or Hugging Face model folder')
    parser.add_argument('dst', help='output file (.pth or .safetensors)')
    parser.add_argument('--src-format', default='auto', choices=['auto', *LAYOUTS],
                        help='layout of SRC (default: detect it from the keys)')
    parser.add_argument('--pretrained-window-size', type=_window_arg, default=None, metavar='W[,W,...]',
                        help='window(s) the checkpoint was trained at, one or one per stage; overrides the stored '
                             'coordinate tables, config.json and the released-checkpoint table')
    parser.add_argument('--dst-format', default='backbone', choices=DST_FORMATS,
                        help="backbone: for init_cfg (default); official: microsoft/Swin-Transformer keys")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and print the report; 1 with a message on stderr when SRC cannot be converted."""
    args = parse_args(argv)
    try:
        result = convert_checkpoint(args.src, args.dst, args.src_format, args.pretrained_window_size,
                                    args.dst_format)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f'error: cannot convert {args.src}: {err}', file=sys.stderr)
        return 1
    print('\n'.join(result.report(args.dst, args.dst_format)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
