"""The checkpoint registry: well-formed entries, the docs table generated from it, names resolved offline."""
import os
import re
import subprocess
import sys
import urllib.parse

import pytest

from checkpoint_helpers import ROOT
from swin_dense import SwinTransformerV2
from swin_dense.arch import ARCH_ZOO
from swin_dense.checkpoint import LAYOUTS
from swin_dense.checkpoint.download import CACHE_ENV
from swin_dense.checkpoint.hub import HUB_PREFIX, parse_hub_source
from swin_dense.checkpoint.sources import resolve_checkpoint
from swin_dense.checkpoint.v1 import V1_LAYOUTS
from swin_dense.checkpoint.windows import pretrained_window_from_name
from swin_dense.checkpoint.zoo import TABLE_MARKERS, ZOO, zoo_entry, zoo_markdown

DOC = os.path.join(ROOT, 'docs', 'checkpoints.md')
TINY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])


def test_every_entry_is_well_formed():
    assert len({e.name for e in ZOO}) == len(ZOO)
    for e in ZOO:
        assert e.arch in ARCH_ZOO and e.data in ('in1k', 'in22k', 'in22k-ft-in1k'), e
        assert e.layout in (LAYOUTS if e.version == 'v2' else V1_LAYOUTS), e
        if e.source.startswith(HUB_PREFIX):
            repo_id, revision = parse_hub_source(e.source)
            assert revision is None and repo_id.split('/')[0] in ('timm', 'microsoft'), e
        else:
            url = urllib.parse.urlparse(e.source)
            assert url.scheme == 'https' and url.netloc and url.path.endswith('.pth') and not url.query, e
        if e.publisher == 'mmpretrain':
            assert re.fullmatch(r'[0-9a-f]{8}', e.sha256_prefix), e
        else:
            assert e.sha256_prefix is None, e
        if e.version == 'v2':
            # The registry and the file-name table of windows.py (which the converter falls back to) agree.
            assert len(e.pretrained_window) == 4 and pretrained_window_from_name(e.source) == list(e.pretrained_window)
        else:
            assert e.pretrained_window is None, e


def test_every_public_release_has_each_publishers_copy():
    v2 = [e for e in ZOO if e.version == 'v2']
    v1 = [e for e in ZOO if e.version == 'v1']
    # 12 SwinV2 releases (MODELHUB.md), each from the official release, timm, HF and mmpretrain.
    assert {p: sum(e.publisher == p for e in v2) for p in ('official', 'timm', 'hf', 'mmpretrain')} == dict(
        official=12, timm=12, hf=12, mmpretrain=12)
    # 16 Swin V1 files (MODELHUB.md), each also on timm's hub; HF has the three ImageNet-1K 224-px ones here.
    counts = {p: sum(e.publisher == p for e in v1) for p in ('official', 'timm', 'hf')}
    assert counts == dict(official=16, timm=16, hf=3)


def test_docs_table_is_the_generated_one():
    with open(DOC, encoding='utf-8') as f:
        document = f.read()
    start, end = TABLE_MARKERS
    assert document.split(start, 1)[1].split(end, 1)[0].strip() == zoo_markdown(), (
        'docs/checkpoints.md is out of date: run python tools/zoo_table.py --write docs/checkpoints.md')
    assert zoo_markdown().count('\n') == len(ZOO) + 1


def test_zoo_table_tool_writes_between_the_markers(tmp_path):
    doc = tmp_path / 'doc.md'
    doc.write_text(f'intro\n{TABLE_MARKERS[0]}\nold table\n{TABLE_MARKERS[1]}\noutro\n')
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'zoo_table.py'), '--write', str(doc)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert doc.read_text() == f'intro\n{TABLE_MARKERS[0]}\n{zoo_markdown()}\n{TABLE_MARKERS[1]}\noutro\n'


def test_a_zoo_name_resolves_from_the_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    entry = zoo_entry('swinv2_tiny_patch4_window8_256')
    cached = tmp_path / os.path.basename(entry.source)
    cached.write_bytes(b'cached')
    assert resolve_checkpoint(entry.name) == str(cached)


def test_an_unknown_name_suggests_the_closest_zoo_names():
    with pytest.raises(FileNotFoundError,
                       match="does not exist.*Did you mean the zoo name 'swinv2_tiny_patch4_window8_256'"):
        resolve_checkpoint('swinv2_tiny_patch4_window8_25')


def _backbone(checkpoint, **kwargs):
    return SwinTransformerV2(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=checkpoint), **kwargs)


def test_backbone_fills_the_pretrained_window_from_the_registry():
    assert _backbone('swinv2_base_patch4_window12_192_22k', window_size=16).pretrained_window_size == [12, 12, 12, 6]
    assert _backbone('swinv2-tiny-w8_3rdparty_in1k-256px').pretrained_window_size == [8, 8, 8, 8]
    same = _backbone('microsoft/swinv2-base-patch4-window12-192-22k', pretrained_window_size=[12, 12, 12, 6])
    assert same.pretrained_window_size == [12, 12, 12, 6]
    # Paths are not the registry's business (the loader checks what the checkpoint itself tells).
    assert _backbone('weights/swinv2_base_patch4_window12_192_22k.pth').pretrained_window_size == [0, 0, 0, 0]


def test_a_window_that_contradicts_the_registry_names_the_setting():
    with pytest.raises(ValueError, match=r'pretrained_window_size=\[16, 16, 16, 8\] does not match .*set '
                                         r'pretrained_window_size=\[12, 12, 12, 6\]'):
        _backbone('swinv2_base_window12_192.ms_in22k', pretrained_window_size=[16, 16, 16, 8])
    with pytest.raises(ValueError, match='Swin V1 checkpoint'):
        _backbone('swin_tiny_patch4_window7_224')
