"""swin_dense.benchmark.extras: a missing optional dependency says how to install it."""
import sys

import pytest

from swin_dense.benchmark.extras import MissingExtra, require


def test_require_imports():
    assert require('json', 'a test').dumps([]) == '[]'


def test_missing_module_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'not_a_real_peer', None)
    with pytest.raises(MissingExtra) as err:
        require('not_a_real_peer.sub', 'the fake peer')
    text = str(err.value)
    assert text.startswith('the fake peer needs not_a_real_peer, which does not import (')
    assert 'pip install swin_dense[bench]' in text and isinstance(err.value, ImportError)


def test_importing_the_package_needs_no_extra():
    """swin_dense.benchmark and its modules import timm, mmpretrain and matplotlib only where used."""
    import subprocess
    code = ('import sys\n'
            'for m in ("timm", "mmpretrain", "matplotlib"): sys.modules[m] = None\n'
            'import swin_dense.benchmark.runner, swin_dense.benchmark.report, swin_dense.benchmark.profile\n'
            'print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-2000:]
