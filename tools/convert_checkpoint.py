#!/usr/bin/env python
"""Convert a SwinV2 checkpoint of any public layout for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``,
or a Swin V1 checkpoint for mmdet's / mmseg's own ``SwinTransformer`` backbone.

    python tools/convert_checkpoint.py SRC DST [--src-format auto|official|timm|hf|mmpretrain|simmim|
                                                             v1-official|v1-hf|v1-timm]
                                               [--pretrained-window-size 12,12,12,6] [--dst-format backbone|official]
                                               [--window-size 12]

SRC: ``.pth``/``.pt``/``.bin``/``.safetensors`` file or a Hugging Face model folder (config.json +
model.safetensors or pytorch_model.bin), an ``http(s)://`` URL, ``hf-hub:ORG/NAME[@REV]`` or a zoo name
(``python tools/zoo_table.py`` lists them), read safely (tensors only; no pickled code runs). The Swin
version is detected from the keys (V1: ``relative_position_bias_table`` and no ``cpb_mlp`` /
``logit_scale``), then the layout; ``--src-format`` names one (and is checked against the keys).

SwinV2 -> this package's ``SwinTransformerV2``. DST: ``.safetensors`` or a ``.pth`` holding
``{'state_dict': ..., 'meta': ...}``. ``--pretrained-window-size`` and ``--dst-format official`` are V2 only.

Swin V1 -> mmdet's / mmseg's ``SwinTransformer`` (``convert_weights=False``): DST is a ``.pth`` with
``backbone.``-prefixed keys; ``--window-size W`` (V1 only) resizes every position bias table to window
W by bicubic interpolation, as mmdet/mmseg would at load time.

URLs and hub models are downloaded once into their cache (docs/checkpoints.md, "Sources"). Prints
the version, layout, architecture, what the meta records, and which source tensors were used or
dropped and why; exits with status 1 and a message on a file it cannot convert.
"""
import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout without install

from swin_dense.checkpoint import LAYOUTS, CheckpointError, convert_checkpoint  # noqa: E402
from swin_dense.checkpoint.convert_file import DST_FORMATS  # noqa: E402
from swin_dense.checkpoint.v1 import V1_LAYOUTS  # noqa: E402
from swin_dense.checkpoint.windows import parse_window_arg  # noqa: E402
from swin_dense.engine import safe_load  # noqa: E402


def _window_arg(text: str) -> List[int]:
    try:
        return parse_window_arg(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is no window: give a positive int, e.g. 12')
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint: file, Hugging Face model folder, http(s):// URL, '
                                    'hf-hub:ORG/NAME[@REV] or zoo name')
    parser.add_argument('dst', help='output file (.pth or, SwinV2 only, .safetensors)')
    parser.add_argument('--src-format', default='auto', choices=['auto', *LAYOUTS, *V1_LAYOUTS],
                        help='layout of SRC (default: detect the Swin version and the layout from the keys)')
    parser.add_argument('--pretrained-window-size', type=_window_arg, default=None, metavar='W[,W,...]',
                        help='SwinV2: window(s) the checkpoint was trained at, one or one per stage; overrides the '
                             'stored coordinate tables, config.json and the released-checkpoint table')
    parser.add_argument('--dst-format', default='backbone', choices=DST_FORMATS,
                        help="backbone: for init_cfg (default); official: microsoft/Swin-Transformer keys (SwinV2)")
    parser.add_argument('--window-size', type=_positive_int, default=None, metavar='W',
                        help='Swin V1: resize every relative_position_bias_table to window W (bicubic, as mmdet/mmseg '
                             'do at load time), e.g. 12 for a window-7 checkpoint used with window_size=12')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and print the report; 1 with a message on stderr when SRC cannot be converted."""
    args = parse_args(argv)
    try:
        with safe_load.allowed():  # whole training checkpoints (FSDP's consolidated ones too) carry mmengine's types
            result = convert_checkpoint(args.src, args.dst, args.src_format, args.pretrained_window_size,
                                        args.dst_format, window_size=args.window_size)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f'error: cannot convert {args.src}: {err}', file=sys.stderr)
        return 1
    print('\n'.join(result.report(args.dst, args.dst_format)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
