"""The checkpoint registry: every public SwinV2 and Swin V1 checkpoint, by name.

One entry per published file or hub repository: the official releases of microsoft/Swin-Transformer
(``MODELHUB.md``), timm's hub copies (``timm/<model>.<tag>``, the tags of timm 1.0's
``swin_transformer_v2.py`` / ``swin_transformer.py``), the Hugging Face transformers models
(``microsoft/swinv2-*``, ``microsoft/swin-*``) and mmpretrain 1.2.0's copies (its
``configs/swin_transformer_v2/metafile.yml``, file names with the ``-<sha256 prefix>`` of the file).
A zoo name is what its publisher calls it: the official file stem, timm's ``model.tag``, the HF hub
id, mmpretrain's model name. :func:`~swin_dense.checkpoint.sources.resolve_checkpoint` turns a name
into its file; the backbone fills or checks ``pretrained_window_size`` from :attr:`ZooEntry.pretrained_window`;
docs/checkpoints.md's table is :func:`zoo_markdown` (``python tools/zoo_table.py``).
"""
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .download import HASH_IN_NAME

_OFFICIAL = 'https://github.com/SwinTransformer/storage/releases/download/'
_MMPRETRAIN = 'https://download.openmmlab.com/mmclassification/v0/swin-v2/'
# mmpretrain's file names: model name, date, hash.
_MMPRETRAIN_FILE = re.compile(r'^(?P<name>.+)_\d{8}-[0-9a-f]+\.pth$')
#: Table header of :func:`zoo_markdown`.
TABLE_HEADER = ('| zoo name | publisher | layout | arch | data | res | window | PWS | source |\n'
                '|---|---|---|---|---|---|---|---|---|')


@dataclass(frozen=True)
class ZooEntry:
    """One public checkpoint.

    Attributes:
        name: the zoo name (what the publisher calls it).
        publisher: 'official', 'timm', 'hf' or 'mmpretrain'.
        version: 'v2' (for :class:`SwinTransformerV2`) or 'v1' (for mmdet's / mmseg's ``SwinTransformer``,
            after tools/convert_checkpoint.py).
        layout: the key layout, as :mod:`swin_dense.checkpoint.detect` names it.
        arch: 'tiny', 'small', 'base' or 'large'.
        data: 'in1k', 'in22k' or 'in22k-ft-in1k' (pre-trained on ImageNet-22K, fine-tuned on 1K).
        resolution: training image size in pixels.
        window: the window it was trained with.
        pretrained_window: per stage, the ``pretrained_window_size`` to set downstream (SwinV2), else None.
        source: an ``http(s)://`` URL or ``hf-hub:ORG/NAME``.
    """

    name: str
    publisher: str
    version: str
    layout: str
    arch: str
    data: str
    resolution: int
    window: int
    pretrained_window: Optional[Tuple[int, ...]]
    source: str

    @property
    def sha256_prefix(self) -> Optional[str]:
        """The hash prefix its file name publishes (mmpretrain), or None."""
        found = HASH_IN_NAME.search(os.path.basename(self.source))
        return found.group(1) if found else None


@dataclass(frozen=True)
class _V2Release:
    """One SwinV2 model and each publisher's name for it (mmpretrain: its file path under the swin-v2 folder)."""

    arch: str
    data: str
    resolution: int
    window: int
    pretrained_window: Tuple[int, ...]
    official: str
    timm: str
    hf: str
    mmpretrain: str


@dataclass(frozen=True)
class _V1Release:
    """One Swin V1 model: its official release folder and file stem, timm's name and the HF id."""

    arch: str
    data: str
    resolution: int
    window: int
    official: str
    timm: str
    hf: Optional[str]


_W8, _W16, _W12 = (8, 8, 8, 8), (16, 16, 16, 8), (12, 12, 12, 6)
_V2_RELEASES = (
    _V2Release('tiny', 'in1k', 256, 8, _W8, 'swinv2_tiny_patch4_window8_256', 'swinv2_tiny_window8_256.ms_in1k',
               'microsoft/swinv2-tiny-patch4-window8-256', 'swinv2-tiny-w8_3rdparty_in1k-256px_20220803-e318968f.pth'),
    _V2Release('tiny', 'in1k', 256, 16, _W16, 'swinv2_tiny_patch4_window16_256', 'swinv2_tiny_window16_256.ms_in1k',
               'microsoft/swinv2-tiny-patch4-window16-256',
               'swinv2-tiny-w16_3rdparty_in1k-256px_20220803-9651cdd7.pth'),
    _V2Release('small', 'in1k', 256, 8, _W8, 'swinv2_small_patch4_window8_256', 'swinv2_small_window8_256.ms_in1k',
               'microsoft/swinv2-small-patch4-window8-256',
               'swinv2-small-w8_3rdparty_in1k-256px_20220803-b01a4332.pth'),
    _V2Release('small', 'in1k', 256, 16, _W16, 'swinv2_small_patch4_window16_256', 'swinv2_small_window16_256.ms_in1k',
               'microsoft/swinv2-small-patch4-window16-256',
               'swinv2-small-w16_3rdparty_in1k-256px_20220803-b707d206.pth'),
    _V2Release('base', 'in1k', 256, 8, _W8, 'swinv2_base_patch4_window8_256', 'swinv2_base_window8_256.ms_in1k',
               'microsoft/swinv2-base-patch4-window8-256', 'swinv2-base-w8_3rdparty_in1k-256px_20220803-8ff28f2b.pth'),
    _V2Release('base', 'in1k', 256, 16, _W16, 'swinv2_base_patch4_window16_256', 'swinv2_base_window16_256.ms_in1k',
               'microsoft/swinv2-base-patch4-window16-256',
               'swinv2-base-w16_3rdparty_in1k-256px_20220803-5a1886b7.pth'),
    _V2Release('base', 'in22k', 192, 12, _W12, 'swinv2_base_patch4_window12_192_22k',
               'swinv2_base_window12_192.ms_in22k', 'microsoft/swinv2-base-patch4-window12-192-22k',
               'pretrain/swinv2-base-w12_3rdparty_in21k-192px_20220803-f7dc9763.pth'),
    _V2Release('base', 'in22k-ft-in1k', 256, 16, _W12, 'swinv2_base_patch4_window12to16_192to256_22kto1k_ft',
               'swinv2_base_window12to16_192to256.ms_in22k_ft_in1k',
               'microsoft/swinv2-base-patch4-window12to16-192to256-22kto1k-ft',
               'swinv2-base-w16_in21k-pre_3rdparty_in1k-256px_20220803-8d7aa8ad.pth'),
    _V2Release('base', 'in22k-ft-in1k', 384, 24, _W12, 'swinv2_base_patch4_window12to24_192to384_22kto1k_ft',
               'swinv2_base_window12to24_192to384.ms_in22k_ft_in1k',
               'microsoft/swinv2-base-patch4-window12to24-192to384-22kto1k-ft',
               'swinv2-base-w24_in21k-pre_3rdparty_in1k-384px_20220803-44eb70f8.pth'),
    _V2Release('large', 'in22k', 192, 12, _W12, 'swinv2_large_patch4_window12_192_22k',
               'swinv2_large_window12_192.ms_in22k', 'microsoft/swinv2-large-patch4-window12-192-22k',
               'pretrain/swinv2-large-w12_3rdparty_in21k-192px_20220803-d9073fee.pth'),
    _V2Release('large', 'in22k-ft-in1k', 256, 16, _W12, 'swinv2_large_patch4_window12to16_192to256_22kto1k_ft',
               'swinv2_large_window12to16_192to256.ms_in22k_ft_in1k',
               'microsoft/swinv2-large-patch4-window12to16-192to256-22kto1k-ft',
               'swinv2-large-w16_in21k-pre_3rdparty_in1k-256px_20220803-c40cbed7.pth'),
    _V2Release('large', 'in22k-ft-in1k', 384, 24, _W12, 'swinv2_large_patch4_window12to24_192to384_22kto1k_ft',
               'swinv2_large_window12to24_192to384.ms_in22k_ft_in1k',
               'microsoft/swinv2-large-patch4-window12to24-192to384-22kto1k-ft',
               'swinv2-large-w24_in21k-pre_3rdparty_in1k-384px_20220803-3b36c165.pth'),
)
_V1_RELEASES = (
    _V1Release('tiny', 'in1k', 224, 7, 'v1.0.0/swin_tiny_patch4_window7_224', 'swin_tiny_patch4_window7_224.ms_in1k',
               'microsoft/swin-tiny-patch4-window7-224'),
    _V1Release('small', 'in1k', 224, 7, 'v1.0.0/swin_small_patch4_window7_224',
               'swin_small_patch4_window7_224.ms_in1k', 'microsoft/swin-small-patch4-window7-224'),
    _V1Release('base', 'in1k', 224, 7, 'v1.0.0/swin_base_patch4_window7_224', 'swin_base_patch4_window7_224.ms_in1k',
               'microsoft/swin-base-patch4-window7-224'),
    _V1Release('base', 'in1k', 384, 12, 'v1.0.0/swin_base_patch4_window12_384',
               'swin_base_patch4_window12_384.ms_in1k', None),
    _V1Release('tiny', 'in22k', 224, 7, 'v1.0.8/swin_tiny_patch4_window7_224_22k',
               'swin_tiny_patch4_window7_224.ms_in22k', None),
    _V1Release('tiny', 'in22k-ft-in1k', 224, 7, 'v1.0.8/swin_tiny_patch4_window7_224_22kto1k_finetune',
               'swin_tiny_patch4_window7_224.ms_in22k_ft_in1k', None),
    _V1Release('small', 'in22k', 224, 7, 'v1.0.8/swin_small_patch4_window7_224_22k',
               'swin_small_patch4_window7_224.ms_in22k', None),
    _V1Release('small', 'in22k-ft-in1k', 224, 7, 'v1.0.8/swin_small_patch4_window7_224_22kto1k_finetune',
               'swin_small_patch4_window7_224.ms_in22k_ft_in1k', None),
    _V1Release('base', 'in22k', 224, 7, 'v1.0.0/swin_base_patch4_window7_224_22k',
               'swin_base_patch4_window7_224.ms_in22k', None),
    _V1Release('base', 'in22k-ft-in1k', 224, 7, 'v1.0.0/swin_base_patch4_window7_224_22kto1k',
               'swin_base_patch4_window7_224.ms_in22k_ft_in1k', None),
    _V1Release('base', 'in22k', 384, 12, 'v1.0.0/swin_base_patch4_window12_384_22k',
               'swin_base_patch4_window12_384.ms_in22k', None),
    _V1Release('base', 'in22k-ft-in1k', 384, 12, 'v1.0.0/swin_base_patch4_window12_384_22kto1k',
               'swin_base_patch4_window12_384.ms_in22k_ft_in1k', None),
    _V1Release('large', 'in22k', 224, 7, 'v1.0.0/swin_large_patch4_window7_224_22k',
               'swin_large_patch4_window7_224.ms_in22k', None),
    _V1Release('large', 'in22k-ft-in1k', 224, 7, 'v1.0.0/swin_large_patch4_window7_224_22kto1k',
               'swin_large_patch4_window7_224.ms_in22k_ft_in1k', None),
    _V1Release('large', 'in22k', 384, 12, 'v1.0.0/swin_large_patch4_window12_384_22k',
               'swin_large_patch4_window12_384.ms_in22k', None),
    _V1Release('large', 'in22k-ft-in1k', 384, 12, 'v1.0.0/swin_large_patch4_window12_384_22kto1k',
               'swin_large_patch4_window12_384.ms_in22k_ft_in1k', None),
)


def _v2_entries(r: _V2Release) -> List[ZooEntry]:
    mm_name = _MMPRETRAIN_FILE.match(os.path.basename(r.mmpretrain)).group('name')
    copies = (('official', r.official, 'official', f'{_OFFICIAL}v2.0.0/{r.official}.pth'),
              ('timm', r.timm, 'timm', f'hf-hub:timm/{r.timm}'),
              ('hf', r.hf, 'hf', f'hf-hub:{r.hf}'),
              ('mmpretrain', mm_name, 'mmpretrain', _MMPRETRAIN + r.mmpretrain))
    return [ZooEntry(name, publisher, 'v2', layout, r.arch, r.data, r.resolution, r.window, r.pretrained_window, source)
            for publisher, name, layout, source in copies]


def _v1_entries(r: _V1Release) -> List[ZooEntry]:
    copies = [('official', os.path.basename(r.official), 'v1-official', f'{_OFFICIAL}{r.official}.pth'),
              ('timm', r.timm, 'v1-timm', f'hf-hub:timm/{r.timm}')]
    if r.hf is not None:
        copies.append(('hf', r.hf, 'v1-hf', f'hf-hub:{r.hf}'))
    return [ZooEntry(name, publisher, 'v1', layout, r.arch, r.data, r.resolution, r.window, None, source)
            for publisher, name, layout, source in copies]


#: Every entry, SwinV2 first, in release order.
ZOO: Tuple[ZooEntry, ...] = tuple(e for r in _V2_RELEASES for e in _v2_entries(r)) + tuple(
    e for r in _V1_RELEASES for e in _v1_entries(r))
_BY_NAME: Dict[str, ZooEntry] = {e.name: e for e in ZOO}


def zoo_entry(name: str) -> Optional[ZooEntry]:
    """The registry entry called ``name``, or None."""
    return _BY_NAME.get(name)


def zoo_markdown() -> str:
    """The registry as the markdown table docs/checkpoints.md holds between its ``zoo-table`` markers."""
    rows = [TABLE_HEADER]
    for e in ZOO:
        windows = list(e.pretrained_window) if e.pretrained_window else '-'
        rows.append(f'| `{e.name}` | {e.publisher} | {e.layout} | {e.arch} | {e.data} | {e.resolution} | {e.window} | '
                    f'{windows} | `{e.source}` |')
    return '\n'.join(rows)


#: The markers between which docs/checkpoints.md holds :func:`zoo_markdown`.
TABLE_MARKERS = ('<!-- zoo-table: generated by `python tools/zoo_table.py --write docs/checkpoints.md` -->',
                 '<!-- end of zoo-table -->')
