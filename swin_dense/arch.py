"""The Swin architectures by name, and per-stage arguments: the leaf every other module may import.

It imports nothing of the package, so the backbone (which builds from it) and the checkpoint
converters (which name what they read) share one table without importing each other.
"""
from typing import Any, Dict, List, Sequence, Tuple, Union

# Released Swin / SwinV2 architectures (microsoft/Swin-Transformer configs/swin and configs/swinv2);
# Swin V1 and V2 use the same four names and sizes.
ARCH_ZOO: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    'small': dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
    'base': dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    'large': dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48]),
}


def arch_name(embed_dims: int, depths: Sequence[int], num_heads: Sequence[int]) -> Union[str, None]:
    """The ``ARCH_ZOO`` name of an architecture, or None when it is not a named one."""
    config = dict(embed_dims=embed_dims, depths=list(depths), num_heads=list(num_heads))
    return next((name for name, arch in ARCH_ZOO.items()
                 if {k: arch[k] for k in ('embed_dims', 'depths', 'num_heads')} == config), None)


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


def resolve_arch(arch: Union[str, Dict[str, Any]]) -> Tuple[int, List[int], List[int]]:
    """``(embed_dims, depths, num_heads)`` of a named arch or of an arch dict.

    Raises:
        ValueError: an unknown name, a dict without the three keys, or depths and heads of different lengths.
    """
    if isinstance(arch, str):
        if arch not in ARCH_ZOO:
            raise ValueError(f'unknown arch {arch!r}; use one of {sorted(ARCH_ZOO)} or a dict with '
                             'embed_dims, depths and num_heads')
        arch = ARCH_ZOO[arch]
    missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
    if missing:
        raise ValueError(f'arch dict is missing {sorted(missing)}; it needs embed_dims, depths and num_heads')
    depths, heads = list(arch['depths']), list(arch['num_heads'])
    if len(depths) != len(heads):
        raise ValueError(f'arch depths {depths} and num_heads {heads} must have the same length (one per stage)')
    return int(arch['embed_dims']), depths, heads
