"""Per-GPU training memory of a model under DDP, ZeRO-1 and FSDP: model state computed, activations traced.

Two kinds of number, kept apart in the table (:func:`markdown`):

* **Computed: model state** (bytes per GPU, fp32 training with AdamW, W data-parallel GPUs, P
  parameters counted on the model built with its parameters on the meta device, :mod:`.meta`):

  =========  ==================================================================================
  DDP        weights 4P + gradients 4P + AdamW moments 8P + DDP's gradient buckets 4P (torch's
             default ``gradient_as_bucket_view=False`` keeps a bucket copy of every gradient)
  ZeRO-1     weights 4P + gradients 4P + moments 8P / W + buckets 4P (mmengine's
             ``ZeroRedundancyOptimizer`` under DDP shards only the optimizer state)
  FSDP       (weights + gradients + moments) 16P / W, plus the units gathered at once: the root unit
             (everything outside the SwinV2 blocks, gathered for the whole step) 4P_root, and two
             block units (the running one and the prefetched one) with their unsharded gradients,
             2 x 8 x P_block (full shard, one unit per ``SwinBlockV2``)
  =========  ==================================================================================

* **Traced: the backbone's activation peak** of one training step on the images one GPU holds
  (:func:`activation_peak`): fake tensors of the real shapes (:mod:`.traced_memory`) at the training
  size itself, with the config's ``with_cp`` and chunk settings, so the padding of border windows
  is the one training sees; weight gradients are dropped as they complete, since the model state
  counts them.

Not counted: the neck's and heads' activations, the allocator's cache and fragmentation, the CUDA
context and kernel workspaces; :data:`USABLE` leaves 10 % of each GPU for them.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch.nn as nn

from ..layers.swin_block import SwinBlockV2
from ..models import SwinTransformerV2
from .meta import empty_parameters, parameter_count
from .traced_memory import traced_train_peak

GIB = 2 ** 30
#: share of a GPU's memory the counted bytes may use
USABLE = 0.9
STRATEGIES = ('DDP', 'ZeRO-1', 'FSDP')
#: the lines that enclose the generated plan in a markdown document (the begin line may carry a note)
BEGIN_MARKER = '<!-- memory-plan:begin'  # the rest of the line is a comment
END_MARKER = '<!-- memory-plan:end -->'


@dataclass
class ModelState:
    """Parameter counts of a model: all, those outside the SwinV2 blocks, and the largest block's."""

    total: int
    root: int
    largest_block: int

    def bytes_per_gpu(self, strategy: str, world_size: int) -> float:
        """Weights, gradients, AdamW moments (and DDP buckets / gathered FSDP units) per GPU, in bytes."""
        p, w = self.total, world_size
        if strategy == 'DDP':
            return 4 * p + 4 * p + 8 * p + 4 * p
        if strategy == 'ZeRO-1':
            return 4 * p + 4 * p + 8 * p / w + 4 * p
        if strategy == 'FSDP':
            return 16 * p / w + 4 * self.root + 2 * 8 * self.largest_block
        raise ValueError(f'unknown strategy {strategy!r}; use one of {STRATEGIES}')


def model_state(model: nn.Module) -> ModelState:
    """:class:`ModelState` of a (meta-device) model, with one FSDP unit per :class:`SwinBlockV2`."""
    blocks = [parameter_count(m) for m in model.modules() if isinstance(m, SwinBlockV2)]
    total = parameter_count(model)
    return ModelState(total=total, root=total - sum(blocks), largest_block=max(blocks, default=0))


def activation_peak(backbone_kwargs: Dict, size: Tuple[int, int], images: int) -> int:
    """Bytes of the backbone's traced activation peak in one training step on ``images`` images of ``size``.

    Args:
        backbone_kwargs: the arguments of :class:`SwinTransformerV2`. The backbone is built afresh for
            every trace (parameters on the meta device), so the caches a step fills (the shifted-window
            masks, kept for the next steps) are counted in each trace.
        size: the training size (H, W), traced as it is: no scaling from another size.
        images: images per GPU (the batch of the traced step).
    """
    with empty_parameters():
        backbone = SwinTransformerV2(**backbone_kwargs).train()
    return traced_train_peak(backbone, (images, 3, *size), keep_grads=False)['peak']


def plan_rows(name: str, state: ModelState, images_per_gpu: Dict[int, int], activations: Dict[int, int],
              capacities_gib: Sequence[int] = (40, 80)) -> List[Dict]:
    """One row per strategy and GPU count: the GiB per GPU and whether it fits each capacity.

    Args:
        images_per_gpu: {GPUs: images per GPU}; its keys are the GPU counts planned.
        activations: {images per GPU: traced activation bytes} (:func:`activation_peak`).
    """
    rows = []
    for strategy in STRATEGIES:
        for w, images in images_per_gpu.items():
            state_gib = state.bytes_per_gpu(strategy, w) / GIB
            act_gib = activations[images] / GIB
            total = state_gib + act_gib
            rows.append(dict(model=name, strategy=strategy, gpus=w, images_per_gpu=images,
                             state_gib=state_gib, activation_gib=act_gib, total_gib=total,
                             fits={c: total <= USABLE * c for c in capacities_gib}))
    return rows


def markdown(rows: List[Dict]) -> str:
    """The rows as a markdown table: model state (computed), activations (traced), total, fits."""
    caps = list(rows[0]['fits'])
    lines = ['| model | strategy | GPUs | images / GPU | model state GiB (computed) | activations GiB (traced) | '
             'total GiB | ' + ' | '.join(f'fits {c} GB' for c in caps) + ' |',
             '|' + '---|' * 3 + '---:|' * 4 + '---|' * len(caps)]
    for r in rows:
        fits = ' | '.join('yes' if r['fits'][c] else 'no' for c in caps)
        lines.append(f"| {r['model']} | {r['strategy']} | {r['gpus']} | {r['images_per_gpu']} | {r['state_gib']:.1f} | "
                     f"{r['activation_gib']:.1f} | {r['total_gib']:.1f} | {fits} |")
    return '\n'.join(lines)


__all__ = ['BEGIN_MARKER', 'END_MARKER', 'ModelState', 'STRATEGIES', 'USABLE', 'activation_peak', 'markdown',
           'model_state', 'plan_rows']
