"""Channel order of the 4C patch-merging features: official concat versus ``nn.Unfold``.

Patch merging stacks the 2x2 neighbours (dh, dw) of every position into 4C channels. The official
code (and HF, timm) concatenates them as ``k * C + c`` with k over (0,0), (1,0), (0,1), (1,1)
(``x0 = x[0::2, 0::2], x1 = x[1::2, 0::2], x2 = x[0::2, 1::2], x3 = x[1::2, 1::2]``). OpenMMLab's
``PatchMerging`` (mmcv/mmdet/mmseg/mmpretrain) gathers them with ``nn.Unfold``, which orders them
``c * 4 + u`` with u row-major over (0,0), (0,1), (1,0), (1,1). The weights that see these channels
(the reduction's input, and in Swin V1 the norm before it) must be reordered between the two.
"""
import torch

# Unfold position u of each official position k (and back: the permutation is its own inverse).
_SWAP_MIDDLE = [0, 2, 1, 3]


def unfold_to_official(tensor: torch.Tensor) -> torch.Tensor:
    """Reorder the last dim (4C) from unfold order ``c * 4 + u`` to official order ``k * C + c``.

    Args:
        tensor: (..., 4C), e.g. a reduction weight (2C, 4C) or a norm weight (4C,).
    """
    *lead, channels = tensor.shape
    grouped = tensor.reshape(*lead, channels // 4, 4).transpose(-1, -2)  # (..., 4 [u], C)
    return grouped[..., _SWAP_MIDDLE, :].reshape(*lead, channels)


def official_to_unfold(tensor: torch.Tensor) -> torch.Tensor:
    """Reorder the last dim (4C) from official order ``k * C + c`` to unfold order ``c * 4 + u``.

    Args:
        tensor: (..., 4C), e.g. a reduction weight (2C, 4C) or a norm weight (4C,).
    """
    *lead, channels = tensor.shape
    grouped = tensor.reshape(*lead, 4, channels // 4)[..., _SWAP_MIDDLE, :]  # (..., 4 [u], C)
    return grouped.transpose(-1, -2).reshape(*lead, channels)
