"""Check a dataset (a config or a built dataset) before training or testing on it.

``validate_dataset(cfg_or_dataset)`` builds a config through mmengine's registries
(:mod:`swin_dense.datasets.build`: annotation-file errors name the file), then checks every
entry's files in a thread pool (:mod:`swin_dense.datasets.files`), and raises one
:class:`DatasetError` listing the offending files, or returns a :class:`ValidationReport`.
``validate_config(cfg, splits)`` does it for a full config's ``<split>_dataloader`` datasets and
logs one summary line; ``tools/train.py`` and ``tools/test.py`` call it before building the Runner.
"""
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from tqdm import tqdm

from .build import LoadStats, build_dataset, describe, is_empty
from .errors import MAX_LISTED, DatasetError
from .files import MODES, check_entry

#: Entries per thread-pool task (and progress-bar step).
CHUNK = 256


@dataclass(frozen=True)
class ValidationReport:
    """What a passed check saw.

    Attributes:
        name: the split ('train', 'val', 'test') or the name given.
        mode: the check level, one of :data:`swin_dense.datasets.files.MODES`.
        num_images: entries whose files were checked (after the dataset's ``filter_cfg``).
        num_empty: images without annotations: among all loaded entries when the check built the
            dataset (those ``filter_empty_gt`` removed included), else among the checked entries.
        num_filtered: entries the dataset's ``filter_cfg`` (or ``indices``) removed after loading;
            None when the dataset was passed built.
        seconds: wall time of the check, building included.
    """

    name: str
    mode: str
    num_images: int
    num_empty: int
    num_filtered: Optional[int]
    seconds: float

    def summary(self) -> str:
        """``'train: 240 images, 3 without annotations (3 removed by filter_cfg)'``."""
        text = f'{self.name}: {self.num_images} images, {self.num_empty} without annotations'
        if self.num_filtered:
            text += f' ({self.num_filtered} removed by filter_cfg)'
        return text


def _leaves(dataset: Any) -> Iterator[BaseDataset]:
    """The distinct mmengine ``BaseDataset`` objects inside ``dataset`` (itself, or a wrapper's)."""
    seen = set()
    stack = [dataset]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, BaseDataset):
            yield node
        elif hasattr(node, 'datasets'):  # ConcatDataset
            stack.extend(reversed(list(node.datasets)))
        elif hasattr(node, 'dataset'):  # RepeatDataset, ClassBalancedDataset, MultiImageMixDataset
            stack.append(node.dataset)
        else:
            raise TypeError(f'cannot check {type(node).__name__}: not an mmengine BaseDataset or a wrapper of one')


def _is_seg_dataset(dataset: BaseDataset) -> bool:
    try:
        from mmseg.datasets import BaseSegDataset
    except ImportError:
        return False
    return isinstance(dataset, BaseSegDataset)


def _check_chunk(dataset: BaseDataset, start: int, stop: int, mode: str,
                 seg_labels: bool) -> Tuple[List[Tuple[str, str]], int]:
    problems: List[Tuple[str, str]] = []
    empty = 0
    for index in range(start, stop):
        info = dataset.get_data_info(index)
        problems += check_entry(info, mode, seg_labels)
        empty += is_empty(info)
    return problems, empty


def _title(name: str) -> str:
    """'the train dataset', or 'the dataset' for the default name."""
    return 'the dataset' if name == 'dataset' else f'the {name} dataset'


def _no_images_error(name: str, leaves: Sequence[BaseDataset], stats: Dict[int, LoadStats],
                     num_images: int) -> DatasetError:
    """The error for a dataset with no image, or a training set with no annotated image."""
    sources = ', '.join(describe(leaf) for leaf in leaves)
    loaded = sum(s.loaded for s in stats.values()) if stats else num_images
    empty = sum(s.empty for s in stats.values()) if stats else num_images
    if loaded == 0:
        return DatasetError(f'{_title(name)} has no images: {sources}',
                            fix='check data_root, ann_file and data_prefix (the annotation file lists no images, '
                                'or the image folder has none with the expected suffix); see docs/datasets.md')
    if empty == loaded:
        removed = '' if num_images else ' (filter_empty_gt removed them)'
        classes = leaves[0].metainfo.get('classes')
        return DatasetError(
            f'{_title(name)} has no annotated image: none of the {loaded} images of {sources} has annotations '
            f'of the classes {classes}{removed}',
            fix="check that the config's metainfo classes are the category names of the annotation file, "
                'and that it is the annotation file of these images')
    return DatasetError(f'{_title(name)} has no images left: its filter_cfg removed all {loaded} '
                        f'({empty} without annotations, the others smaller than min_size): {sources}',
                        fix='lower filter_cfg.min_size, or check the image sizes in the annotation file')


def validate_dataset(dataset: Any, *, name: str = 'dataset', mode: str = 'header', training: Optional[bool] = None,
                     num_workers: int = 8, max_listed: int = MAX_LISTED, progress: Optional[bool] = None,
                     scope: Optional[str] = None) -> ValidationReport:
    """Check that every sample of a dataset can be loaded, before hours are spent on it.

    Args:
        dataset: a dataset config (dict; built here through the ``DATASETS`` registry), or a built
            mmengine ``BaseDataset`` or wrapper of ones (the hook passes the Runner's).
        name: the dataset's name in messages ('train', 'val', ...).
        mode: ``'exists'``, ``'header'`` or ``'decode'`` (see :mod:`swin_dense.datasets.files`).
        training: a training set must hold at least one annotated image; None: a dataset is one
            unless built with ``test_mode=True``.
        num_workers: threads checking files (the work is I/O and Pillow, which releases the GIL).
        max_listed: offending files named in the error message (all are in ``error.problems``).
        progress: show a tqdm progress bar; None: only on a terminal.
        scope: registry scope to build a config in ('mmdet', 'mmseg'); None: the current default scope.

    Raises:
        DatasetError: an annotation file is missing or malformed, a file cannot be loaded, or no
            usable image is left.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    start = time.perf_counter()
    stats: Dict[int, LoadStats] = {}
    if isinstance(dataset, Mapping):
        with DefaultScope.overwrite_default_scope(scope):
            dataset = build_dataset(dataset, stats)
    leaves = list(_leaves(dataset))
    for leaf in leaves:
        leaf.full_init()
    if training is None:
        training = not all(getattr(leaf, 'test_mode', False) for leaf in leaves)

    tasks = [(leaf, begin, min(begin + CHUNK, len(leaf)), _is_seg_dataset(leaf))
             for leaf in leaves for begin in range(0, len(leaf), CHUNK)]
    num_images = sum(len(leaf) for leaf in leaves)
    problems: List[Tuple[str, str]] = []
    empty_checked = 0
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool, \
            tqdm(total=num_images, desc=f'checking {name} ({mode})', unit='img',
                 disable=None if progress is None else not progress) as bar:
        futures = [pool.submit(_check_chunk, leaf, begin, stop, mode, seg) for leaf, begin, stop, seg in tasks]
        for future, (_, begin, stop, _) in zip(futures, tasks):
            chunk_problems, chunk_empty = future.result()
            problems += chunk_problems
            empty_checked += chunk_empty
            bar.update(stop - begin)

    if problems:
        files = len({path for path, _ in problems})
        raise DatasetError(
            f'{_title(name)} ({", ".join(describe(leaf) for leaf in leaves)}): {files} of its files cannot be '
            f'used ({mode} check of {num_images} images)', problems, max_listed=max_listed,
            fix='restore or re-download these files, or remove their entries from the annotation file '
                '(for segmentation, the image / label pair); then run again')
    if num_images == 0 or (training and empty_checked == num_images):
        raise _no_images_error(name, leaves, stats, num_images)
    built_here = bool(stats)
    return ValidationReport(
        name=name, mode=mode, num_images=num_images,
        num_empty=sum(s.empty for s in stats.values()) if built_here else empty_checked,
        num_filtered=sum(s.loaded for s in stats.values()) - num_images if built_here else None,
        seconds=time.perf_counter() - start)


def summary_line(reports: Sequence[ValidationReport]) -> str:
    """One line for the log: ``'dataset check (header, 0.4 s): train: 240 images, ...; val: ...'``."""
    seconds = sum(r.seconds for r in reports)
    modes = '/'.join(sorted({r.mode for r in reports}))
    return f'dataset check ({modes}, {seconds:.1f} s): ' + '; '.join(r.summary() for r in reports)


def validate_config(cfg: Config, splits: Sequence[str], mode: str = 'header', **kwargs) -> List[ValidationReport]:
    """:func:`validate_dataset` on the ``<split>_dataloader.dataset`` of each split a config has, then log a summary.

    Builds in the config's ``default_scope``; a 'train' split must hold annotated images. Splits the
    config does not define (``val_dataloader=None``) are skipped. Keyword arguments go to
    :func:`validate_dataset`.
    """
    reports = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        reports.append(validate_dataset(loader['dataset'], name=split, mode=mode, training=split == 'train',
                                        scope=cfg.get('default_scope'), **kwargs))
    if reports:
        print_log(summary_line(reports), logger='current')
    return reports


__all__ = ['ValidationReport', 'validate_dataset', 'validate_config', 'summary_line']
