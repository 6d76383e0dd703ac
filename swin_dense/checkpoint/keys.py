"""Key lists shortened for messages and logs: the one place that decides how many keys a line shows."""
from typing import Sequence


def short_keys(keys: Sequence[str], limit: int = 4, empty: str = '-') -> str:
    """The first ``limit`` keys, comma-separated, and how many more: ``'a, b, ... (+3)'``.

    Args:
        keys: the keys (or any strings, e.g. shape-mismatch lines), in the order to show them.
        limit: how many to show.
        empty: what to say when there are none.
    """
    if not keys:
        return empty
    more = len(keys) - limit
    return ', '.join(keys[:limit]) + (f', ... (+{more})' if more > 0 else '')
