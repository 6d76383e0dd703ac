"""``AtomicCheckpointHook``: mmengine's ``CheckpointHook`` that a crash at any moment cannot leave unresumable.

mmengine 0.10.7's ``CheckpointHook._save_checkpoint_with_step`` does three things in this order:

1. with ``max_keep_ckpts``, it deletes the oldest kept checkpoint;
2. it writes the new checkpoint (through the file backend's ``put``: with ``backend_args=dict(
   backend='atomic_local')`` that write is atomic, see :mod:`swin_dense.engine.atomic_backend`);
3. it writes the new path into ``<work_dir>/last_checkpoint`` with a plain ``open(..., 'w')``.

A ``kill -9`` between 1 and 2 with ``max_keep_ckpts=1`` (the sample configs) leaves no checkpoint at
all while ``last_checkpoint`` still names the deleted one; a kill inside 3 leaves ``last_checkpoint``
empty. Either way ``--resume`` fails. This hook does the same work in a crash-safe order: write the
new checkpoint, then replace ``last_checkpoint`` atomically, and only then delete the outdated
checkpoint. At every instant the file named by ``last_checkpoint`` exists and is complete.

Before the run loads its checkpoint (``before_run``, which mmengine 0.10.7's ``Runner.train``,
``val`` and ``test`` call just before ``load_or_resume``), it checks that the file is not truncated
(:func:`~swin_dense.engine.truncated_checkpoint.check_complete`): a truncated one, left by a save
under another hook or an incomplete copy, is refused with its name and the ``--resume`` argument for
the newest complete checkpoint, instead of torch's error about a zip archive.

It also removes, when training starts, the temporary ``.partial`` files that a writer killed in the
middle of :func:`~swin_dense.engine.atomic_backend.atomic_write` left in the checkpoint directory.

Use it as ``default_hooks.checkpoint = dict(type='AtomicCheckpointHook', backend_args=dict(
backend='atomic_local'), ...)`` (``configs/_base_/swin_dense_runtime.py`` holds that block for every
config); every other argument is ``CheckpointHook``'s.

mmengine has no public extension point for the order of these steps, so the hook overrides the
private method; nor for the file a run will load, which the hook reads from the Runner's
``_has_loaded``, ``_resume`` and ``_load_from`` exactly as ``Runner.load_or_resume`` does. It is
guarded (:mod:`swin_dense.engine.upstream`): building the hook under another mmengine than the one
the method was read from raises, and ``tests/engine/test_upstream.py`` fails
when the source of the overridden method, of its callers or of ``load_or_resume`` changes.
"""
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import find_latest_checkpoint

from .atomic_backend import atomic_write, remove_partial_files
from .truncated_checkpoint import check_complete
from .upstream import check_mmengine


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that saves first, then updates ``last_checkpoint`` atomically, then prunes.

    Raises:
        RuntimeError: when built under an mmengine other than
            :data:`~swin_dense.engine.upstream.VERIFIED_MMENGINE`.
    """

    def __init__(self, *args, **kwargs) -> None:
        check_mmengine('AtomicCheckpointHook')
        super().__init__(*args, **kwargs)

    def before_run(self, runner) -> None:
        """Refuse, naming it and the newest complete checkpoint, a truncated file that the run would load."""
        super().before_run(runner)
        path = _checkpoint_to_load(runner)
        if path is not None and osp.isfile(path):
            check_complete(path, self.filename_tmpl, resume=runner._resume)

    def before_train(self, runner) -> None:
        """Set up as ``CheckpointHook`` does, then delete partial files left by a killed writer."""
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for path in remove_partial_files(self.out_dir):
                runner.logger.info(f'removed the partially written file {path} (left by an interrupted save)')

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        """``CheckpointHook._save_checkpoint_with_step`` (mmengine 0.10.7) in crash-safe order."""
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            # the same step twice (a best-checkpoint update re-saves the latest one) keeps the list
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        # model-parallel runs gather sharded states on all ranks above; the files are rank 0's
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt.encode('utf-8'))
        if outdated is not None:
            self._remove(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated)))

    def _remove(self, path: str) -> None:
        """Delete an outdated checkpoint: a file, or a directory (DeepSpeed checkpoints)."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)


def _checkpoint_to_load(runner) -> Optional[str]:
    """The checkpoint ``Runner.load_or_resume`` (mmengine 0.10.7) will read next, or None."""
    if runner._has_loaded:
        return None
    if runner._resume and runner._load_from is None:
        return find_latest_checkpoint(runner.work_dir)
    return runner._load_from


__all__ = ['AtomicCheckpointHook']
