"""swin_dense.engine.safe_load: mmengine checkpoints load with torch.load(weights_only=True) still on,
and nothing beyond the allowlist is let through; swin_dense.runtime installs it, once, and ``load``
reads one file with it without installing it."""
import collections
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import swin_dense.runtime  # noqa: F401  installs the allowlist
from swin_dense.engine.safe_load import history_buffer_method, safe_globals


class NotAllowed:
    """A plain user class: weights_only must keep refusing it."""

    def __init__(self):
        self.x = 1


class CallsOnLoad:
    """Pickles as a call to os.getcwd (harmless if it ran, but it must not run)."""

    def __reduce__(self):
        return (os.getcwd, ())


def _mmengine_like_checkpoint():
    buf = HistoryBuffer()
    for v in (1.0, np.float64(2.5), 3):
        buf.update(v)
    return {
        'meta': {'epoch': 1, 'iter': 10, 'seed': np.int64(7), 'dataset_meta': {'classes': ('a', 'b')}},
        'state_dict': collections.OrderedDict(w=torch.ones(2, 2)),
        'message_hub': {'log_scalars': {'train/loss': buf},
                        'runtime_info': {'best_score': np.float64(0.25), 'arr': np.arange(4, dtype=np.int64),
                                         'f32': np.float32(1.5)},
                        'resumed_keys': {'best_score': False}},
        'param_schedulers': [{'milestones': collections.Counter({27: 1, 33: 1}), 'last_step': 3}],
    }


def test_allowlisted_types_round_trip(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    for kwargs in ({}, {'weights_only': True}):  # torch's default is weights_only=True
        ckpt = torch.load(path, map_location='cpu', **kwargs)
        buf = ckpt['message_hub']['log_scalars']['train/loss']
        assert isinstance(buf, HistoryBuffer)
        assert buf.current() == 3 and buf.mean() == pytest.approx(6.5 / 3)
        info = ckpt['message_hub']['runtime_info']
        assert info['best_score'] == 0.25 and isinstance(info['best_score'], np.float64)
        assert info['arr'].tolist() == [0, 1, 2, 3]
        assert ckpt['param_schedulers'][0]['milestones'] == collections.Counter({27: 1, 33: 1})
        assert torch.equal(ckpt['state_dict']['w'], torch.ones(2, 2))
    with open(path, 'rb') as f:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(f) == []


@pytest.mark.parametrize('payload', [NotAllowed(), CallsOnLoad(), {'fn': np.save}])
def test_anything_else_is_still_refused(tmp_path, payload):
    path = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'extra': payload}, path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(path, map_location='cpu')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location='cpu', weights_only=True)


def test_allowlist_is_small_and_data_only():
    names = []
    for entry in safe_globals():
        obj = entry[0] if isinstance(entry, tuple) else entry
        names.append(f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", obj)}')
        assert isinstance(obj, type) or obj.__name__ in ('_reconstruct', 'scalar', 'history_buffer_method'), obj
    assert any('HistoryBuffer' in n for n in names)
    assert len(safe_globals()) < 25
    # getattr is bound to a stand-in that resolves HistoryBuffer's statistics methods only
    assert ('builtins.getattr' in [e[1] for e in safe_globals() if isinstance(e, tuple)])
    assert getattr not in safe_globals()


def test_getattr_stand_in_allows_only_history_buffer_statistics(tmp_path):
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, '__init__'), (np.ndarray, 'tofile'), (collections.Counter, 'update')):
        with pytest.raises(pickle.UnpicklingError):
            history_buffer_method(obj, name)

    class GetattrPayload:
        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))
    path = tmp_path / 'getattr.pth'
    torch.save({'x': GetattrPayload()}, path)
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        torch.load(path, map_location='cpu')


@pytest.mark.e2e
def test_real_training_checkpoint(det_train_run):
    """The checkpoint tools/train.py wrote: every global in it is allowlisted, and loading it needs the allowlist."""
    ckpt_path = det_train_run['checkpoint']
    with open(ckpt_path, 'rb') as f:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(f) == []
    ckpt = torch.load(ckpt_path, map_location='cpu')
    assert {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'} <= set(ckpt)
    assert any(isinstance(v, HistoryBuffer) for v in ckpt['message_hub']['log_scalars'].values())
    # without `import swin_dense.runtime` torch refuses the same file (so the allowlist is what makes it load)
    code = ('import pickle, sys, torch\n'
            'try:\n'
            f'    torch.load({str(ckpt_path)!r}, map_location="cpu", weights_only=True)\n'
            'except pickle.UnpicklingError as e:\n'
            '    print("REFUSED", str(e).splitlines()[0]); sys.exit(0)\n'
            'sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and 'REFUSED' in proc.stdout, proc.stdout + proc.stderr


def test_load_refuses_the_rest_and_leaves_the_allowlist_as_it_was(tmp_path):
    """safe_load.load: the same allowlist for one call; entries already installed stay installed."""
    from swin_dense.engine.safe_load import load
    before = sorted(map(repr, torch.serialization.get_safe_globals()))
    good = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), good)
    assert load(good)['message_hub']['log_scalars']['train/loss'].current() == 3
    for i, payload in enumerate([NotAllowed(), CallsOnLoad()]):
        bad = tmp_path / f'bad{i}.pth'
        torch.save({'state_dict': {'w': torch.ones(1)}, 'extra': payload}, bad)
        with pytest.raises(pickle.UnpicklingError):
            load(bad)
    assert sorted(map(repr, torch.serialization.get_safe_globals())) == before


def test_load_needs_no_install(tmp_path):
    """In a process that never installed the allowlist, load() reads the checkpoint and takes its additions back."""
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    code = (
        'import pickle, torch\n'
        'from swin_dense.engine.safe_load import load, safe_globals\n'
        'def ours():  # the entries of our allowlist that torch holds (torch adds its own, e.g. DTensor)\n'
        '    return [e for e in safe_globals() if e in torch.serialization.get_safe_globals()]\n'
        'assert ours() == [], "import swin_dense installed the allowlist"\n'
        f'ckpt = load({str(path)!r})\n'
        'assert ckpt["message_hub"]["log_scalars"]["train/loss"].current() == 3\n'
        'assert ours() == [], "load() left its additions installed"\n'
        'try:\n'
        f'    torch.load({str(path)!r}, weights_only=True)\n'
        'except pickle.UnpicklingError:\n'
        '    print("REFUSED WITHOUT load()")\n')
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get('PYTHONPATH', ''), PYTHONWARNINGS='ignore')
    proc = subprocess.run([sys.executable, '-c', code], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'REFUSED WITHOUT load()' in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_the_allowlist_is_installed_in_one_place():
    """swin_dense.runtime calls safe_load.install(); no other module of the package installs anything."""
    import re
    package = os.path.dirname(os.path.abspath(swin_dense.__file__))
    callers = []
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                with open(path, encoding='utf-8') as f:
                    text = f.read()
                if re.search(r'add_safe_globals\(|install_safe_load\(|safe_load\.install\(|^install\(\)', text, re.M):
                    callers.append(os.path.relpath(path, package))
    assert sorted(callers) == ['engine/safe_load.py', 'runtime.py'], callers
