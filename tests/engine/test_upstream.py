"""The guard on the mmengine internals that AtomicCheckpointHook and ZeroOptimizerHook rely on
(swin_dense.engine.upstream): the pinned version, and the source of every guarded method unchanged."""
import mmengine
import pytest
from mmengine.registry import HOOKS

import swin_dense.runtime  # noqa: F401  registers the hooks
from swin_dense.engine import upstream


def test_installed_mmengine_is_the_verified_one():
    assert mmengine.__version__ == upstream.VERIFIED_MMENGINE, (
        f'mmengine {mmengine.__version__} is installed; the engine hooks were checked against '
        f'{upstream.VERIFIED_MMENGINE} (see swin_dense/engine/upstream.py)')


@pytest.mark.parametrize('name', sorted(upstream.GUARDED))
def test_guarded_upstream_code_is_unchanged(name):
    """Fails when mmengine's code under one of our overrides changes: re-read it, adapt, then record the new hash."""
    recorded, relied_on_by = upstream.GUARDED[name]
    actual = upstream.source_sha256(name)
    assert actual == recorded, (
        f'the source of {name} changed (sha256 {actual}, recorded {recorded}). {relied_on_by}. Read the new code, '
        'adapt swin_dense/engine, then update GUARDED (and VERIFIED_MMENGINE) in swin_dense/engine/upstream.py.')


def test_hooks_refuse_another_mmengine(monkeypatch):
    monkeypatch.setattr(upstream.mmengine, '__version__', '0.11.0')
    with pytest.raises(RuntimeError, match=r'AtomicCheckpointHook relies on internals of mmengine 0\.10\.7.*'
                                           r'_save_checkpoint_with_step'):
        HOOKS.build(dict(type='AtomicCheckpointHook', backend_args=dict(backend='atomic_local')))
    with pytest.raises(RuntimeError, match=r'ZeroOptimizerHook relies on .*Runner\.save_checkpoint'):
        upstream.check_mmengine('ZeroOptimizerHook')


def test_atomic_hook_builds_under_the_verified_mmengine():
    hook = HOOKS.build(dict(type='AtomicCheckpointHook', backend_args=dict(backend='atomic_local'), interval=2))
    assert type(hook).__name__ == 'AtomicCheckpointHook' and hook.interval == 2
