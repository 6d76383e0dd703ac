"""docs/recipes.md against the configs: every `key` / `value` row, and the GPU-count tables' samples.

The tables are the documentation users train by; each row names a config, a path in the loaded
config and the value the recipe gives it. Values are compared exactly (they are recipe constants).
"""
import ast
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / 'docs' / 'recipes.md'
ROW = re.compile(r'^\| `(?P<config>configs/[^`]+)` \| `(?P<key>[^`]+)` \| `(?P<value>[^`]+)` \| (?P<source>.+) \|$')
GPUS = re.compile(r'<!-- recipes: gpus config=(?P<config>\S+) -->')
GPU_ROW = re.compile(r'^\| (?P<gpus>\d+) \| (?P<options>.+) \|$')


def value_rows(text: str) -> List[Dict[str, str]]:
    """The `config | key | value | source` rows of the recipe tables."""
    return [m.groupdict() for m in map(ROW.match, text.splitlines()) if m]


def gpu_tables(text: str) -> List[Tuple[str, List[Tuple[int, Dict[str, Any]]]]]:
    """(config, [(GPUs, --cfg-options as a dict)]) for every GPU-count table."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        match = GPUS.match(line)
        if not match:
            continue
        rows = []
        for row in lines[i + 1:]:
            if not row.startswith('|'):
                break
            cells = GPU_ROW.match(row)
            if cells:
                options = re.findall(r'`([^`]+)`', cells['options'])
                rows.append((int(cells['gpus']), parse_options(options[0]) if options else {}))
        tables.append((match['config'], rows))
    return tables


def parse_options(text: str) -> Dict[str, Any]:
    """``k=v k=v`` as --cfg-options reads it (numbers as numbers)."""
    return {key: ast.literal_eval(value) for key, value in (item.split('=', 1) for item in text.split())}


def lookup(cfg: Any, key: str) -> Any:
    """The value at a dotted path, list items by index."""
    for part in key.split('.'):
        cfg = cfg[int(part)] if isinstance(cfg, (list, tuple)) else cfg[part]
    return cfg


def plain(value: Any) -> Any:
    """Tuples as lists, so `(512, 512)` in the table equals the [512, 512] a config may hold."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


_CONFIGS: Dict[str, Config] = {}


def load(path: str) -> Config:
    if path not in _CONFIGS:
        _CONFIGS[path] = Config.fromfile(str(ROOT / path))
    return _CONFIGS[path]


ROWS = value_rows(RECIPES.read_text())


def test_tables_have_rows_and_sources():
    assert len(ROWS) > 60, 'the recipe tables were not parsed'
    assert all(row['source'].strip() for row in ROWS)


@pytest.mark.parametrize('row', ROWS, ids=[f"{Path(r['config']).stem}:{r['key']}" for r in ROWS])
def test_config_matches_table(row):
    cfg = load(row['config'])
    assert plain(lookup(cfg, row['key'])) == plain(ast.literal_eval(row['value'])), (
        f"{row['config']}: {row['key']} is {lookup(cfg, row['key'])!r}, docs/recipes.md says {row['value']}")


def _samples(cfg: Config, gpus: int) -> Tuple[float, float, int]:
    """(samples in training, samples in warm-up, images per optimizer step) for a run on `gpus` GPUs."""
    per_iter = gpus * cfg.train_dataloader.batch_size
    step = per_iter * cfg.optim_wrapper.get('accumulative_counts', 1)
    warmup = cfg.param_scheduler[0].end * per_iter
    total = cfg.train_cfg.max_iters * per_iter if 'max_iters' in cfg.train_cfg else cfg.train_cfg.max_epochs
    return total, warmup, step


TABLES = gpu_tables(RECIPES.read_text())


@pytest.mark.parametrize('config,rows', TABLES, ids=[Path(c).stem for c, _ in TABLES])
def test_more_gpus_keeps_the_recipe_samples(config, rows):
    assert [gpus for gpus, _ in rows] == [8, 16, 32, 64]
    recipe_gpus = next(gpus for gpus, options in rows if not options)
    recipe = _samples(load(config), recipe_gpus)
    for gpus, options in rows:
        cfg = Config.fromfile(str(ROOT / config))
        cfg.merge_from_dict(options)
        total, warmup, step = _samples(cfg, gpus)
        assert (total, warmup) == recipe[:2], f'{gpus} GPUs: {options} changes the samples seen'
        if 'max_iters' not in cfg.train_cfg:  # epochs: the samples per step must be the recipe's batch
            assert step == recipe[2], f'{gpus} GPUs: {step} images per step, the recipe has {recipe[2]}'
        elif step != recipe[2]:  # a larger batch: schedule and intervals shortened by the same factor
            ratio = step // recipe[2]
            assert cfg.train_cfg.val_interval * ratio == load(config).train_cfg.val_interval
            assert cfg.param_scheduler[1].begin == cfg.param_scheduler[0].end
            assert cfg.param_scheduler[1].end == cfg.train_cfg.max_iters


def test_parser_reads_a_row_and_catches_a_wrong_value():
    text = '| `configs/upernet_swinv2_t_ade20k.py` | `optim_wrapper.optimizer.lr` | `6e-05` | made up |'
    (row,) = value_rows(text)
    assert plain(lookup(load(row['config']), row['key'])) != plain(ast.literal_eval(row['value']))
