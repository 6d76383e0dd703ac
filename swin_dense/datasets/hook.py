"""``ValidateDatasetHook``: check the Runner's datasets before the first iteration.

For runs not started through ``tools/train.py`` / ``tools/test.py`` (which check up front by
default), a config opts in with::

    custom_imports = dict(imports=['swin_dense', 'swin_dense.runtime'], allow_failed_imports=False)
    custom_hooks = [dict(type='ValidateDatasetHook')]              # or mode='exists' on huge sets

(``swin_dense.runtime``, which this package's configs import, registers the hook; importing
``swin_dense.datasets`` does too.)

The hook checks the datasets the Runner built (no second build): the training and validation sets
in ``before_train`` (after the model and checkpoint are loaded, before iteration 1), the test set
in ``before_test``, a validation set in ``before_val`` of a standalone ``runner.val()``. Each split
is checked once per run. Annotation-file errors are raised by the Runner's own dataset build,
before any hook runs, so only the up-front check of the tools wraps them with the file name.
"""
from typing import List, Sequence, Set

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .errors import MAX_LISTED
from .validate import ValidationReport, summary_line, validate_dataset


@HOOKS.register_module()
class ValidateDatasetHook(Hook):
    """Run :func:`swin_dense.datasets.validate_dataset` on the Runner's dataloaders' datasets.

    Args:
        splits: which of 'train', 'val', 'test' to check.
        mode: ``'exists'`` (only that the files are there: one ``stat`` each), ``'header'``
            (default: headers, truncation, sizes) or ``'decode'`` (full decode).
        num_workers: threads checking files.
        max_listed: offending files named in the error.
    """

    priority = 'VERY_HIGH'

    def __init__(self, splits: Sequence[str] = ('train', 'val', 'test'), mode: str = 'header',
                 num_workers: int = 8, max_listed: int = MAX_LISTED) -> None:
        unknown = set(splits) - {'train', 'val', 'test'}
        if unknown:
            raise ValueError(f'splits must be among train, val, test; got {sorted(unknown)}')
        self.splits = tuple(splits)
        self.mode = mode
        self.num_workers = num_workers
        self.max_listed = max_listed
        self._checked: Set[str] = set()

    def _check(self, runner, splits: Sequence[str]) -> None:
        reports: List[ValidationReport] = []
        for split in splits:
            if split not in self.splits or split in self._checked:
                continue
            loop = getattr(runner, f'{split}_loop')  # built by the Runner before these hooks are called
            if loop is None:
                continue
            reports.append(validate_dataset(loop.dataloader.dataset, name=split, mode=self.mode,
                                            training=split == 'train', num_workers=self.num_workers,
                                            max_listed=self.max_listed))
            self._checked.add(split)
        if reports:
            runner.logger.info(summary_line(reports))

    def before_train(self, runner) -> None:
        """Check the training and validation sets."""
        self._check(runner, ('train', 'val'))

    def before_val(self, runner) -> None:
        """Check the validation set of a standalone ``runner.val()`` (during training it was checked already)."""
        self._check(runner, ('val',))

    def before_test(self, runner) -> None:
        """Check the test set."""
        self._check(runner, ('test',))


__all__ = ['ValidateDatasetHook']
