"""Atomic checkpoint writes: the 'atomic_local' file backend and AtomicCheckpointHook.

A process killed in the middle of writing a checkpoint must leave the previous checkpoint and
``last_checkpoint`` intact and loadable (and resumable), and its partial file must not be taken for a
checkpoint. The kill is real: a child process trains a toy model with mmengine's Runner and
SIGKILLs itself after writing half of the bytes of its third checkpoint. The same kill under
mmengine's own ``CheckpointHook`` leaves nothing to resume from, which is what the hook fixes.
A truncated checkpoint that reaches ``--resume`` anyway (another hook, an incomplete copy) is
refused before ``torch.load`` with its name and the newest complete checkpoint to resume from.

The toy model and runner here are shared with test_nonfinite.py.
"""
import glob
import hashlib
import os
import pickle
import signal
import stat
import subprocess
import sys
import uuid
from typing import Dict, Iterable, Optional

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint
from torch import nn

import swin_dense.runtime  # noqa: F401  registers the backend, the hooks and the optimizer wrappers
from swin_dense.engine import atomic_backend
from swin_dense.engine.atomic_backend import AtomicLocalBackend, atomic_write, remove_partial_files
from swin_dense.engine.truncated_checkpoint import ZIP_MAGIC, is_truncated

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WIDTH = 64
ATOMIC_HOOK = dict(type='AtomicCheckpointHook', backend_args=dict(backend='atomic_local'))
MMENGINE_HOOK = dict(type='CheckpointHook')


# ----------------------------------------------------------------------------- toy model and runner
class ToyModel(BaseModel):
    """A linear layer with an MSE loss; the loss is NaN in the (1-based) iterations ``nan_iters``."""

    def __init__(self, nan_iters: Iterable[int] = ()) -> None:
        super().__init__()
        self.linear = nn.Linear(WIDTH, WIDTH)
        self.nan_iters = set(nan_iters)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode != 'loss':
            return out
        loss = ((out - torch.stack(data_samples)) ** 2).mean()
        if MessageHub.get_current_instance().get_info('iter') + 1 in self.nan_iters:
            loss = loss * float('nan')
        return dict(loss=loss)


def _toy_data(n: int = 8):
    g = torch.Generator().manual_seed(0)
    return [dict(inputs=torch.randn(WIDTH, generator=g), data_samples=torch.randn(WIDTH, generator=g))
            for _ in range(n)]


def toy_runner(work_dir: str, *, max_iters: int = 6, interval: int = 2, checkpoint: Optional[Dict] = None,
               optim_wrapper: Optional[Dict] = None, nan_iters: Iterable[int] = (), resume: bool = False,
               load_from: Optional[str] = None, max_keep_ckpts: int = 1, custom_hooks=None) -> Runner:
    """mmengine's Runner on the toy model: iteration-based, AdamW, a checkpoint every ``interval``."""
    ckpt = dict(ATOMIC_HOOK if checkpoint is None else checkpoint, interval=interval, by_epoch=False,
                max_keep_ckpts=max_keep_ckpts)
    return Runner(
        model=ToyModel(nan_iters),
        work_dir=work_dir,
        experiment_name=f'toy-{uuid.uuid4().hex[:8]}',  # a message hub of its own per runner
        train_dataloader=dict(dataset=_toy_data(), sampler=dict(type='InfiniteSampler', shuffle=False),
                              batch_size=2, num_workers=0),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=optim_wrapper or dict(type='NanGuardOptimWrapper', optimizer=dict(type='AdamW', lr=0.01)),
        default_hooks=dict(checkpoint=ckpt, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=custom_hooks,
        resume=resume,
        load_from=load_from,
        randomness=dict(seed=0),
        default_scope='mmengine')


# ----------------------------------------------------------------------------- the kill, in a child
class _FileProxy:
    """A file object that passes everything to ``f``; subclasses replace ``write``."""

    def __init__(self, f) -> None:
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


class _DieHalfway(_FileProxy):
    """A binary file that, for the ``kill_at``-th large write, writes half of the bytes and SIGKILLs the process."""

    count = 0
    kill_at = 0

    def write(self, data):
        if len(data) > 10_000:
            _DieHalfway.count += 1
            if _DieHalfway.count == _DieHalfway.kill_at:
                self._f.write(data[:len(data) // 2])
                self._f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return self._f.write(data)


def _trapped(opener):
    def trapped(file, mode='r', *args, **kwargs):
        f = opener(file, mode, *args, **kwargs)
        return _DieHalfway(f) if 'w' in mode and 'b' in mode else f
    return trapped


def child_train_and_die(work_dir: str, hook: str, kill_at: int) -> None:
    """Run in a child process: train, and die halfway through the ``kill_at``-th checkpoint write.

    Both ways a checkpoint reaches the disk are trapped: mmengine's ``LocalBackend.put`` (builtin
    ``open``) and :func:`atomic_write` (``os.fdopen``).
    """
    from mmengine.fileio.backends import local_backend
    local_backend.open = _trapped(open)
    os.fdopen = _trapped(os.fdopen)
    _DieHalfway.kill_at = kill_at
    toy_runner(work_dir, checkpoint=ATOMIC_HOOK if hook == 'atomic' else MMENGINE_HOOK).train()


def _kill_during_third_save(work_dir: str, hook: str) -> None:
    """Checkpoints at iterations 2 and 4 complete; the process dies writing the one of iteration 6."""
    code = (f'import sys; sys.path.insert(0, {HERE!r}); import test_checkpoint_io as t; '
            f't.child_train_and_die({work_dir!r}, {hook!r}, kill_at=3)')
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f'{proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'


def _loads(path: str) -> bool:
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:
        return False
    return 'state_dict' in ckpt


def test_kill_while_saving_keeps_the_previous_checkpoint_resumable(tmp_path):
    work_dir = str(tmp_path)
    _kill_during_third_save(work_dir, 'atomic')

    latest = find_latest_checkpoint(work_dir)
    assert latest == os.path.join(work_dir, 'iter_4.pth')
    assert _loads(latest)
    assert torch.load(latest, weights_only=True)['meta']['iter'] == 4
    # the half-written checkpoint is a hidden temporary file that no checkpoint lookup matches
    partial = glob.glob(os.path.join(work_dir, '.iter_6.pth.*.partial'))
    assert len(partial) == 1
    assert 0 < os.path.getsize(partial[0]) < os.path.getsize(latest)
    assert [os.path.basename(p) for p in glob.glob(os.path.join(work_dir, '*.pth'))] == ['iter_4.pth']

    runner = toy_runner(work_dir, resume=True)
    runner.train()
    assert runner.iter == 6
    assert not glob.glob(os.path.join(work_dir, '.*.partial'))  # removed when the resumed run started
    assert find_latest_checkpoint(work_dir) == os.path.join(work_dir, 'iter_6.pth')
    assert _loads(os.path.join(work_dir, 'iter_6.pth'))
    assert not os.path.exists(latest)  # deleted (max_keep_ckpts=1) only after iter_6.pth was complete


def test_mmengine_checkpoint_hook_loses_everything_under_the_same_kill(tmp_path):
    """The control: mmengine deletes iter_4.pth first and writes iter_6.pth in place."""
    work_dir = str(tmp_path)
    _kill_during_third_save(work_dir, 'mmengine')
    latest = find_latest_checkpoint(work_dir)
    assert latest == os.path.join(work_dir, 'iter_4.pth') and not os.path.exists(latest)
    assert os.path.exists(os.path.join(work_dir, 'iter_6.pth'))
    assert not _loads(os.path.join(work_dir, 'iter_6.pth'))  # truncated
    with pytest.raises(FileNotFoundError):
        toy_runner(work_dir, checkpoint=MMENGINE_HOOK, resume=True).train()


# ----------------------------------------------------------------------------- a truncated newest checkpoint
def _truncate_newest_of_two(work_dir: str) -> str:
    """Train to iteration 4 keeping iter_2.pth and iter_4.pth, then cut iter_4.pth to half its size."""
    toy_runner(work_dir, max_iters=4, max_keep_ckpts=2).train()
    newest = os.path.join(work_dir, 'iter_4.pth')
    with open(newest, 'r+b') as f:
        f.truncate(os.path.getsize(newest) // 2)
    return newest


def test_mmengine_resume_from_a_truncated_checkpoint_fails_inside_torch(tmp_path):
    """The control: without the hook's check, torch.load fails with an error naming neither file nor remedy."""
    work_dir = str(tmp_path)
    _truncate_newest_of_two(work_dir)
    with pytest.raises((OSError, RuntimeError)) as error:
        toy_runner(work_dir, max_iters=6, checkpoint=MMENGINE_HOOK, resume=True).train()
    assert 'iter_' not in str(error.value) and 'truncated' not in str(error.value)


@pytest.mark.parametrize('explicit', [False, True], ids=['auto', 'explicit'])
def test_resume_from_a_truncated_checkpoint_names_it_and_the_one_before(tmp_path, explicit):
    work_dir = str(tmp_path)
    newest = _truncate_newest_of_two(work_dir)
    earlier = os.path.join(work_dir, 'iter_2.pth')
    with pytest.raises(RuntimeError) as error:
        toy_runner(work_dir, max_iters=6, max_keep_ckpts=2, resume=True, load_from=newest if explicit else None).train()
    message = str(error.value)
    assert f'cannot resume from {newest}: the file is truncated' in message
    assert f'Complete checkpoints in {work_dir}: iter_2.pth. Resume from the newest of them: --resume {earlier}' \
        in message

    runner = toy_runner(work_dir, max_iters=6, max_keep_ckpts=2, resume=True, load_from=earlier)
    runner.train()
    assert runner.iter == 6 and _loads(os.path.join(work_dir, 'iter_6.pth'))


def test_truncated_checkpoint_without_a_complete_one_says_to_start_anew(tmp_path):
    work_dir = str(tmp_path)
    newest = _truncate_newest_of_two(work_dir)
    os.remove(os.path.join(work_dir, 'iter_2.pth'))
    with pytest.raises(RuntimeError, match='start the run anew, without --resume'):
        toy_runner(work_dir, resume=True).train()
    with pytest.raises(RuntimeError, match=f'cannot load {newest}: the file is truncated'):
        toy_runner(work_dir, load_from=newest).train()


def test_is_truncated_at_every_cut_and_not_for_complete_or_legacy_files(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(64, 64))), path)
    data = open(path, 'rb').read()
    assert not is_truncated(path)
    for cut in (0, 2, len(ZIP_MAGIC), 100, len(data) // 2, len(data) - 1):
        with open(path, 'wb') as f:
            f.write(data[:cut])
        assert is_truncated(path), cut
        with pytest.raises((OSError, RuntimeError, EOFError, pickle.UnpicklingError)):  # torch's errors at these cuts
            torch.load(path, weights_only=True)
    torch.save(dict(w=torch.zeros(2)), path, _use_new_zipfile_serialization=False)  # torch's legacy format loads
    assert not is_truncated(path) and torch.load(path, weights_only=True)['w'].shape == (2,)


# ----------------------------------------------------------------------------- atomic_write and the backend
def test_atomic_write_replaces_and_keeps_plain_permissions(tmp_path):
    path = tmp_path / 'sub' / 'file.bin'
    atomic_write(path, b'first')
    atomic_write(path, b'second')
    assert path.read_bytes() == b'second'
    plain = tmp_path / 'plain.bin'
    plain.write_bytes(b'x')
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(os.listdir(path.parent)) == ['file.bin']


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'ckpt.pth'
    atomic_write(path, b'old content')
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    class DiskFull(_FileProxy):
        def write(self, data):
            self._f.write(data[:len(data) // 2])
            raise OSError(28, 'No space left on device')

    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic_backend.os, 'fdopen', lambda fd, mode: DiskFull(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match='No space'):
        atomic_write(path, b'new content that does not fit' * 100)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert os.listdir(tmp_path) == ['ckpt.pth']


def test_backend_is_registered_with_mmengine(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'\x00\x01', tmp_path / 'a.pth')
    backend.put_text('iter_2.pth', tmp_path / 'last_checkpoint')
    assert backend.get(tmp_path / 'a.pth') == b'\x00\x01'
    assert backend.get_text(tmp_path / 'last_checkpoint') == 'iter_2.pth'


def test_remove_partial_files_touches_only_its_own_names(tmp_path):
    names = ['.iter_6.pth.1234-0badcafe.partial', 'iter_4.pth', '.keep.partial', 'x.partial', '.iter_2.pth.partial']
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    removed = remove_partial_files(tmp_path)
    assert [os.path.basename(p) for p in removed] == ['.iter_6.pth.1234-0badcafe.partial']
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
    assert remove_partial_files(tmp_path / 'missing') == []
