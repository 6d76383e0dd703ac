"""Generated blocks of the documentation: text between two marker lines that a tool rewrites.

docs/checkpoints.md holds the registry's table (``tools/zoo_table.py --write``) and docs/distributed.md
the memory plan (``tools/memory_plan.py --write``) this way; the marker lines stay, so a document
can be rewritten again and any text outside them is kept as it is.
"""

__all__ = ['replace_block', 'rewrite_block']


def replace_block(document: str, begin: str, end: str, text: str) -> str:
    """``document`` with the lines strictly between its begin and end marker lines replaced by ``text``.

    Args:
        document: markdown text.
        begin: how the begin marker line starts (the rest of that line is free, e.g. a comment).
        end: the end marker line, the first such line after the begin line.
        text: the new block (surrounding newlines dropped).

    Raises:
        ValueError: no begin line, or no end line after it.
    """
    lines = document.split('\n')
    first = next((i for i, line in enumerate(lines) if line.startswith(begin)), None)
    last = None if first is None else next((i for i in range(first + 1, len(lines)) if lines[i] == end), None)
    if last is None:
        raise ValueError(f'no generated block: put a line starting with {begin!r} and, after it, a line {end!r} '
                         'where the generated text belongs')
    return '\n'.join(lines[:first + 1] + [text.strip('\n')] + lines[last:])


def rewrite_block(path: str, begin: str, end: str, text: str) -> None:
    """Rewrite the file ``path`` with :func:`replace_block`; the file is left alone when it raises."""
    with open(path, encoding='utf-8') as f:
        document = f.read()
    updated = replace_block(document, begin, end, text)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(updated)
