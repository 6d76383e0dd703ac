"""Build a dataset config through mmengine's ``DATASETS`` registry, with its annotation errors named.

mmdet's ``CocoDataset`` and mmseg's ``ADE20KDataset`` are built as they are. Each leaf dataset
(an mmengine ``BaseDataset``) is built with ``lazy_init=True`` (and ``serialize_data=False``: it is
only read by the check, then dropped) and then initialised here, so that:

* an exception raised while reading the annotations (``json.JSONDecodeError: Expecting value:
  line 1 column 1``, ``KeyError: 'file_name'``, a missing folder) becomes a :class:`DatasetError`
  that names the annotation file (or image folder) and says what to do;
* a COCO-style dataset (one with mmdet's ``COCOAPI`` class attribute) has its annotation file checked
  right after it is parsed (:func:`swin_dense.datasets.coco_file.check_coco_index`): the top-level
  lists, image entries, and annotations that refer to unknown images, which pycocotools and mmdet
  would otherwise drop without a word;
* the entries loaded before ``filter_cfg`` are counted, with those that have no annotations
  (:class:`LoadStats`), which mmdet's ``filter_empty_gt`` removes from training sets.

Wrappers (``ConcatDataset``, ``RepeatDataset``, ``ClassBalancedDataset``, mmdet's
``MultiImageMixDataset``) are built with their inner datasets built this way.
"""
import copy
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping

from mmengine.dataset import BaseDataset
from mmengine.registry import DATASETS

from .coco_file import check_coco_index
from .errors import DatasetError


@dataclass
class LoadStats:
    """Entries a leaf dataset loaded before filtering, and how many of them had no annotations."""

    loaded: int = 0
    empty: int = 0


def is_empty(info: Mapping) -> bool:
    """True for a detection entry without annotations (``instances`` empty); segmentation entries never are."""
    return 'instances' in info and not info['instances']


def describe(dataset: BaseDataset) -> str:
    """``'CocoDataset data/coco/annotations/x.json'``, or the image folder for folder-based datasets."""
    source = dataset.ann_file or dataset.data_prefix.get('img_path') or dataset.data_prefix.get('img') or \
        dataset.data_root
    return f'{type(dataset).__name__} {source}'


def _fix_for(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return ('check data_root, ann_file and data_prefix in the config (or pass --cfg-options '
                'data_root=/path/to/dataset/); docs/datasets.md shows the expected layout')
    if isinstance(error, json.JSONDecodeError):
        return ('the file is not valid JSON (an interrupted download or write?): re-download or '
                'regenerate it')
    return 'the annotations do not have the structure this dataset type reads; compare them with its format'


def _checked_coco_api(dataset: BaseDataset) -> Callable[[str], Any]:
    """``dataset.COCOAPI`` that checks the parsed annotation file before mmdet reads it."""
    api = dataset.COCOAPI

    def load(local_path: str) -> Any:
        coco = api(local_path)
        check_coco_index(coco.dataset, coco.imgs, dataset.ann_file, require_annotations=not dataset.test_mode)
        return coco

    return load


def _counting_loader(dataset: BaseDataset, stats: LoadStats) -> Callable[[], List[dict]]:
    """``dataset.load_data_list`` that records what it loaded in ``stats``."""
    load_data_list = dataset.load_data_list

    def load() -> List[dict]:
        data_list = load_data_list()
        stats.loaded = len(data_list)
        stats.empty = sum(map(is_empty, data_list))
        return data_list

    return load


def _build_leaf(cfg: Dict, stats: Dict[int, LoadStats]) -> BaseDataset:
    # not serialized: the object is only read here (and mmengine cannot serialize an empty list)
    dataset = DATASETS.build({**cfg, 'lazy_init': True, 'serialize_data': False})
    leaf_stats = stats[id(dataset)] = LoadStats()
    # instance attributes shadow the class's for this object only; it is discarded after the check
    dataset.load_data_list = _counting_loader(dataset, leaf_stats)
    if hasattr(dataset, 'COCOAPI'):
        dataset.COCOAPI = _checked_coco_api(dataset)
    try:
        dataset.full_init()
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f'{describe(dataset)}: cannot be loaded: {type(error).__name__}: {error}',
                           fix=_fix_for(error)) from error
    return dataset


def build_dataset(cfg: Mapping, stats: Dict[int, LoadStats]) -> Any:
    """Build ``cfg`` (in the current default scope), filling ``stats`` with ``id(leaf) -> LoadStats``.

    Raises:
        DatasetError: an annotation file or image folder cannot be read, or is malformed.
    """
    cfg = dict(copy.deepcopy(cfg))
    if isinstance(cfg.get('dataset'), Mapping):
        cfg['dataset'] = build_dataset(cfg['dataset'], stats)
    if isinstance(cfg.get('datasets'), (list, tuple)):
        cfg['datasets'] = [build_dataset(c, stats) if isinstance(c, Mapping) else c for c in cfg['datasets']]
    dataset_type = cfg.get('type')
    if isinstance(dataset_type, str):
        with DATASETS.switch_scope_and_registry(None) as registry:  # the default scope's registry, as build uses
            cls = registry.get(dataset_type)
    else:
        cls = dataset_type
    if isinstance(cls, type) and issubclass(cls, BaseDataset):
        return _build_leaf(cfg, stats)
    return DATASETS.build(cfg)


__all__ = ['LoadStats', 'build_dataset', 'describe', 'is_empty']
