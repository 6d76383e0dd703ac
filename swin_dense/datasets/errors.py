"""The error a dataset check raises: what is wrong, with which files, and how to fix it."""
from typing import Sequence, Tuple

#: Offending files (or annotation entries) named in the message; the rest are counted.
MAX_LISTED = 10


class DatasetError(ValueError):
    """A dataset that cannot be trained or evaluated on as it is.

    The message is one summary line naming the dataset (its annotation file or image folder),
    then up to ``max_listed`` lines ``<file or entry>: <reason>``, a count of the ones left out, and
    a ``Fix:`` line.

    Attributes:
        summary: the first line of the message.
        problems: every ``(file or entry, reason)`` pair found, not only the listed ones.
        fix: what to do about it.
    """

    def __init__(self, summary: str, problems: Sequence[Tuple[str, str]] = (), fix: str = '',
                 max_listed: int = MAX_LISTED) -> None:
        self.summary = summary
        self.problems = list(problems)
        self.fix = fix
        lines = [summary]
        lines += [f'  {item}: {reason}' for item, reason in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            lines.append(f'  ... and {len(self.problems) - max_listed} more ({len(self.problems)} in all)')
        if fix:
            lines.append(f'Fix: {fix}')
        super().__init__('\n'.join(lines))
