#!/usr/bin/env python
"""Print the checkpoint registry as a markdown table, or write it into docs/checkpoints.md.

    python tools/zoo_table.py                                # print the table
    python tools/zoo_table.py --write docs/checkpoints.md    # replace the table between its markers

The registry is swin_dense/checkpoint/zoo.py; every name in it works as ``init_cfg``'s ``checkpoint``,
mmseg's ``model.pretrained`` and the SRC of tools/convert_checkpoint.py.
"""
import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout without install

from swin_dense.checkpoint.zoo import TABLE_MARKERS, zoo_markdown  # noqa: E402
from swin_dense.markdown_blocks import rewrite_block  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    """Print the table, or rewrite the file given with ``--write``; 1 with a message when it has no markers."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--write', metavar='DOC', help='markdown file whose zoo-table markers get the table')
    args = parser.parse_args(argv)
    if args.write is None:
        print(zoo_markdown())
        return 0
    try:
        rewrite_block(args.write, *TABLE_MARKERS, zoo_markdown())
    except ValueError as err:
        print(f'error: {args.write}: {err}', file=sys.stderr)
        return 1
    print(f'wrote the table of the registry into {args.write}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
