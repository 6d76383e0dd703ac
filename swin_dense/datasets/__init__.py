"""Dataset checks: find missing, corrupt or mis-annotated files before hours are spent training.

``validate_dataset`` checks a dataset config or a built dataset and raises a :class:`DatasetError`
naming the offending files; ``validate_config`` checks a config's train / val / test sets (what
``tools/train.py`` and ``tools/test.py`` run up front); importing this package registers
``ValidateDatasetHook`` in mmengine's root ``HOOKS`` registry for configs' ``custom_hooks``.
See docs/datasets.md ("Checking a dataset").
"""
from .errors import DatasetError
from .files import MODES
from .hook import ValidateDatasetHook
from .validate import ValidationReport, summary_line, validate_config, validate_dataset

__all__ = ['DatasetError', 'MODES', 'ValidateDatasetHook', 'ValidationReport', 'summary_line', 'validate_config',
           'validate_dataset']
