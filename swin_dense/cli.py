"""Config plumbing of the command-line tools: scope, ``--cfg-options``, CPU distributed runs, ``--amp``.

Used by ``tools/train.py``, ``tools/test.py``, ``tools/image_demo.py`` and, through
:mod:`swin_dense.inference`, by ``tools/infer.py`` and ``tools/serve.py``. It sits above the runtime
package (:mod:`swin_dense.engine`), which does not import it. The tools are task-agnostic: a
config's ``default_scope`` ('mmdet' or 'mmseg') decides which OpenMMLab package registers its
modules, and everything else goes through mmengine's Runner.
"""
import os
import sys
from typing import Any, Dict, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from .checkpoint import CheckpointError
from .checkpoint.sources import resolve_checkpoint

TASKS = {'mmdet': 'det', 'mmseg': 'seg'}
#: FlexibleRunner strategies that wrap the model in FSDP
FSDP_STRATEGIES = ('FSDPStrategy', 'ConsolidatedFSDPStrategy')


def detect_task(cfg: Config) -> str:
    """'det' or 'seg' from the config's ``default_scope`` (else from the model type)."""
    scope = cfg.get('default_scope')
    if scope in TASKS:
        return TASKS[scope]
    model_type = str(cfg.get('model', {}).get('type', ''))
    if 'EncoderDecoder' in model_type or 'Seg' in model_type:
        return 'seg'
    return 'det'


def setup_scope(cfg: Config) -> str:
    """Register mmdet's or mmseg's modules (and this package) and make the config's scope the default.

    Returns:
        the task, 'det' or 'seg'.
    """
    import swin_dense  # noqa: F401  registers the backbone and the optimizer constructor
    task = detect_task(cfg)
    if task == 'seg':
        from mmseg.utils import register_all_modules
        cfg.setdefault('default_scope', 'mmseg')
    else:
        from mmdet.utils import register_all_modules
        cfg.setdefault('default_scope', 'mmdet')
    register_all_modules(init_default_scope=False)
    return task


def _replace_strings(node: Any, old: str, new: str) -> Any:
    """Copy of ``node`` with strings equal to ``old`` (or, for a directory ``old/``, under it) rewritten."""
    if isinstance(node, str):
        if node == old:
            return new
        if old.endswith('/') and node.startswith(old):
            return (new if new.endswith('/') else new + '/') + node[len(old):]
        return node
    if isinstance(node, dict):
        for key in list(node.keys()):
            node[key] = _replace_strings(node[key], old, new)
        return node
    if isinstance(node, list):
        return [_replace_strings(v, old, new) for v in node]
    if isinstance(node, tuple):
        return tuple(_replace_strings(v, old, new) for v in node)
    return node


#: former names of top-level path variables -> their name now (configs before the rename keep theirs)
RENAMED_VARIABLES = {'checkpoint_file': 'pretrained'}


def merge_cfg_options(cfg: Config, cfg_options: Optional[Dict]) -> None:
    """``cfg.merge_from_dict(cfg_options)``, plus propagation of top-level path variables.

    mmengine substitutes a config's variables (``pretrained``, ``data_root``) when it parses the
    file, so ``--cfg-options pretrained=X`` alone would only change the unused top-level key.
    Here, for every overridden top-level string variable, the strings that were derived from its
    old value are rewritten too: values equal to it, and, for a directory ending in '/', values
    starting with it (``data_root + 'annotations/...'``). A variable's former name
    (:data:`RENAMED_VARIABLES`: ``checkpoint_file``, the segmentation configs' name for
    ``pretrained``) stands for the new one in configs that only have the new one.
    """
    if not cfg_options:
        return
    cfg_options = dict(cfg_options)
    for old_name, new_name in RENAMED_VARIABLES.items():
        if old_name in cfg_options and old_name not in cfg and new_name in cfg and new_name not in cfg_options:
            cfg_options[new_name] = cfg_options.pop(old_name)
            print_log(f'--cfg-options {old_name}=...: the variable is called {new_name} now; setting {new_name}',
                      logger='current')
    olds = {k: cfg.get(k) for k in cfg_options if '.' not in k and isinstance(cfg.get(k), str) and cfg.get(k)}
    cfg.merge_from_dict(cfg_options)
    for key, old in olds.items():
        new = cfg_options[key]
        if not isinstance(new, str) or new == old:
            continue
        for top in list(cfg.keys()):
            if top != key:
                cfg[top] = _replace_strings(cfg[top], old, new)
        print_log(f'--cfg-options {key}={new}: replaced {old!r} throughout the config', logger='current')


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare distributed runs; on a machine without CUDA, use gloo and CPU DDP.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``, and its default DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail without GPUs. Without CUDA this initialises the process
    group with gloo itself (the Runner then skips its own initialisation) and wraps the model in
    ``MMDistributedDataParallel`` without ``device_ids``; an FSDP strategy (FlexibleRunner) gets
    ``model_wrapper.device_id='cpu'`` instead of its default GPU index ``LOCAL_RANK``.
    """
    if launcher == 'none':
        return
    if torch.cuda.is_available():
        return
    import torch.distributed as dist
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('strategy', {}).get('type') in FSDP_STRATEGIES:
        # FSDPStrategy passes device_id=LOCAL_RANK (a GPU index) by default
        cfg.strategy.setdefault('model_wrapper', {}).setdefault('device_id', 'cpu')
    elif cfg.get('model_wrapper_cfg') is None:
        # device_ids=None explicitly: the Runner adds device_ids=[LOCAL_RANK] by default
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters', False))
    if dist.is_available() and dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env()
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} is not supported on CPU; use pytorch (torchrun) or slurm')
    dist.init_process_group(backend='gloo')
    print_log(f'no CUDA: initialised torch.distributed with gloo, rank {dist.get_rank()}/{dist.get_world_size()}',
              logger='current')


def _slurm_env() -> None:
    """Set torch.distributed's env:// variables from Slurm's (as mmengine's slurm launcher does)."""
    import subprocess
    node_list = os.environ['SLURM_NODELIST']
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


#: the AMP counterpart of each optimizer wrapper type that --amp accepts
AMP_WRAPPERS = {'OptimWrapper': 'AmpOptimWrapper', 'NanGuardOptimWrapper': 'NanGuardAmpOptimWrapper'}


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Switch the config's optimizer wrapper to its AMP counterpart (dynamic loss scale).

    ``OptimWrapper`` becomes mmengine's ``AmpOptimWrapper`` and ``NanGuardOptimWrapper`` (the V2
    configs' default) ``NanGuardAmpOptimWrapper``, keeping its ``on_nonfinite`` settings.
    """
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in AMP_WRAPPERS.values():
        print_log('AMP training is already enabled in the config.', logger='current')
    elif kind not in AMP_WRAPPERS:
        raise ValueError(f'--amp works with optim_wrapper types {sorted(AMP_WRAPPERS)} (switched to '
                         f'{sorted(AMP_WRAPPERS.values())}), got {kind!r}; set an AMP wrapper in the config instead')
    else:
        wrapper.type = AMP_WRAPPERS[kind]
        wrapper.loss_scale = 'dynamic'
    if dtype:
        wrapper.dtype = dtype


def checkpoint_argument(source: str) -> str:
    """A tool's CHECKPOINT argument (path, URL, ``hf-hub:`` id or zoo name; docs/checkpoints.md, "Sources")
    as a local path; when it cannot be had, the reason on stderr and exit status 2."""
    try:
        return resolve_checkpoint(source)
    except (FileNotFoundError, CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ['AMP_WRAPPERS', 'FSDP_STRATEGIES', 'checkpoint_argument', 'detect_task', 'setup_scope', 'merge_cfg_options', 'setup_distributed', 'enable_amp']
