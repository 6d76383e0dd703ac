"""The Swin architectures by name, and per-stage arguments: the leaf every other module may import.

It imports nothing of the package, so the backbone (which builds from it) and the checkpoint
converters (which name what they read) share one table without importing each other.
"""
from typing import Any, Dict, List, Sequence, Tuple, Union

# Released Swin / SwinV2 architectures (microsoft/Swin-Transformer configs/swin and configs/swinv2);
# Swin V1 and V2 use the same four names and sizes. 'huge' and 'giant' are SwinV2-H and SwinV2-G as
# mmpretrain 1.2.0 defines them (``SwinTransformerV2.arch_zoo``), with its key for the paper's extra
# LayerNorm on the main branch every 6 blocks (section 3.2; counted within each stage).
ARCH_ZOO: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], extra_norm_every_n_blocks=0),
    'small': dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], extra_norm_every_n_blocks=0),
    'base': dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], extra_norm_every_n_blocks=0),
    'large': dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], extra_norm_every_n_blocks=0),
    'huge': dict(embed_dims=352, depths=[2, 2, 18, 2], num_heads=[8, 16, 32, 64], extra_norm_every_n_blocks=6),
    'giant': dict(embed_dims=512, depths=[2, 2, 42, 4], num_heads=[16, 32, 64, 128], extra_norm_every_n_blocks=6),
}
_ARCH_KEYS = ('embed_dims', 'depths', 'num_heads', 'extra_norm_every_n_blocks')


def arch_name(embed_dims: int, depths: Sequence[int], num_heads: Sequence[int],
              extra_norm_every_n_blocks: int = 0) -> Union[str, None]:
    """The ``ARCH_ZOO`` name of an architecture, or None when it is not a named one."""
    config = dict(embed_dims=embed_dims, depths=list(depths), num_heads=list(num_heads),
                  extra_norm_every_n_blocks=extra_norm_every_n_blocks)
    return next((name for name, arch in ARCH_ZOO.items() if {k: arch[k] for k in _ARCH_KEYS} == config), None)


def has_extra_norm(block: int, extra_norm_every_n_blocks: int) -> bool:
    """Whether block ``block`` (index within its stage) ends with the extra main-branch norm ``norm3``:
    ``(block + 1) % n == 0`` for ``n = extra_norm_every_n_blocks`` > 0 (mmpretrain's rule), never for 0."""
    return extra_norm_every_n_blocks > 0 and (block + 1) % extra_norm_every_n_blocks == 0


def per_stage(value: Union[int, Sequence[int]], num_stages: int, name: str) -> List[int]:
    """One value per stage: an int, or a one-element sequence, is repeated; a longer one must match.

    Raises:
        ValueError: a sequence whose length is neither 1 nor ``num_stages`` (the message names ``name``).
    """
    values = [int(value)] if isinstance(value, int) else [int(v) for v in value]
    if len(values) == 1:
        return values * num_stages
    if len(values) != num_stages:
        raise ValueError(f'{name} needs one value per stage ({num_stages}) or a single value, got {value!r}')
    return values


def resolve_arch(arch: Union[str, Dict[str, Any]]) -> Tuple[int, List[int], List[int], int]:
    """``(embed_dims, depths, num_heads, extra_norm_every_n_blocks)`` of a named arch or of an arch dict.

    An arch dict needs ``embed_dims``, ``depths`` and ``num_heads``; ``extra_norm_every_n_blocks``
    (mmpretrain's key; 0, no extra norms, when absent) is optional, so mmpretrain arch dicts carry over.

    Raises:
        ValueError: an unknown name, a dict without the three keys, an unknown key, depths and heads of
            different lengths, or a negative ``extra_norm_every_n_blocks``.
    """
    if isinstance(arch, str):
        if arch not in ARCH_ZOO:
            raise ValueError(f'unknown arch {arch!r}; use one of {sorted(ARCH_ZOO)} or a dict with '
                             'embed_dims, depths and num_heads')
        arch = ARCH_ZOO[arch]
    missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
    if missing:
        raise ValueError(f'arch dict is missing {sorted(missing)}; it needs embed_dims, depths and num_heads')
    unknown = set(arch) - set(_ARCH_KEYS)
    if unknown:
        raise ValueError(f'arch dict has unknown keys {sorted(unknown)}; it takes {list(_ARCH_KEYS)}')
    depths, heads = list(arch['depths']), list(arch['num_heads'])
    if len(depths) != len(heads):
        raise ValueError(f'arch depths {depths} and num_heads {heads} must have the same length (one per stage)')
    extra_norm = int(arch.get('extra_norm_every_n_blocks', 0))
    if extra_norm < 0:
        raise ValueError(f'extra_norm_every_n_blocks must be 0 (none) or a positive block period, got {extra_norm}')
    return int(arch['embed_dims']), depths, heads, extra_norm
