"""Packaging: the configs ship under swin_dense/.mim/configs (as mmdet's and mmseg's), with the LICENSE.

mim finds a package's configs at ``get_installed_path(package)/.mim/configs`` (mmengine's helper, which
mim uses too). mmengine's own ``pkg::path`` config prefix is limited to a fixed list of OpenMMLab
packages (``MODULE2PACKAGE``), so it is no way in for a plugin.
"""
import importlib.resources
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a build reads (a copy, so that the build's egg-info and build/ never land in the shared checkout).
BUILD_INPUTS = ('pyproject.toml', 'setup.py', 'README.md', 'LICENSE', 'MANIFEST.in', 'swin_dense', 'configs')


def _configs(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder, followlinks=True)
                  for f in files if f.endswith('.py'))


def test_the_installed_package_serves_the_configs():
    mim = importlib.resources.files('swin_dense') / '.mim' / 'configs'
    assert _configs(str(mim)) == _configs(os.path.join(ROOT, 'configs')) != []


def test_a_wheel_holds_the_configs_where_mim_looks(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name in BUILD_INPUTS:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy(path, src / name)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    subprocess.run([*pip, 'wheel', str(src), '--no-deps', '--no-build-isolation', '-w', str(tmp_path / 'dist')],
                   check=True, timeout=300, cwd=tmp_path)
    wheel = next((tmp_path / 'dist').glob('swin_dense-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n[len('swin_dense/.mim/configs/'):] for n in names if n.startswith('swin_dense/.mim/configs/'))
    assert shipped == _configs(os.path.join(ROOT, 'configs'))
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in names)
    # Installed from the wheel (not editable): where mim looks, the configs load.
    subprocess.run([*pip, 'install', '--no-deps', '--target', str(tmp_path / 'site'), str(wheel)], check=True,
                   timeout=300)
    load = ('import os; from mmengine.config import Config; from mmengine.utils import get_installed_path; '
            "mim = os.path.join(get_installed_path('swin_dense'), '.mim', 'configs'); "
            "cfg = Config.fromfile(os.path.join(mim, 'sample', 'upernet_swinv2_t_sample.py')); "
            'print(cfg.model.backbone.type, mim)')
    run = subprocess.run([sys.executable, '-c', load], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path / 'site')), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ['SwinTransformerV2', str(tmp_path / 'site' / 'swin_dense' / '.mim' / 'configs')]
