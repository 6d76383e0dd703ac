"""Does a state dict fit a model: which of the model's tensors it holds, with which shapes, and what else.

The one comparison behind both loaders: the backbone's ``init_cfg`` loader
(``models/backbones/pretrained.py``, which raises on any shape mismatch) and the inference
:class:`~swin_dense.inference.predictor.Predictor` (which raises on anything missing). Each caller
decides what is an error; this module only compares, on state dicts, never on modules.
"""
from dataclasses import dataclass
from typing import List, Mapping

import torch

# BatchNorm's step counter: a buffer the model keeps, not a weight a checkpoint must provide.
_COUNTER = 'num_batches_tracked'


@dataclass
class Fit:
    """How a state dict fits a model's state dict.

    Attributes:
        loaded: keys in both with the same shape, in the state dict's order.
        missing: model keys the state dict lacks, sorted (BatchNorm ``num_batches_tracked`` counters left out).
        unexpected: state-dict keys the model lacks, sorted.
        mismatched: ``'key: checkpoint [..] vs model [..]'`` for keys in both with another shape, in the
            state dict's order.
        num_weights: the model's tensors apart from BatchNorm counters.
    """

    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]
    num_weights: int

    @property
    def none_present(self) -> bool:
        """Whether the state dict holds none of the model's weights (a checkpoint of another kind of model)."""
        return len(self.missing) == self.num_weights


def fit_state_dict(state_dict: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> Fit:
    """Compare ``state_dict`` with a model's own state dict (``model.state_dict()``), key by key and shape by shape.

    Args:
        state_dict: the tensors to load, in the model's key scheme (convert other layouts first).
        own: the model's state dict.
    """
    both = [k for k in state_dict if k in own]
    mismatched = [f'{k}: checkpoint {list(state_dict[k].shape)} vs model {list(own[k].shape)}'
                  for k in both if state_dict[k].shape != own[k].shape]
    return Fit(loaded=[k for k in both if state_dict[k].shape == own[k].shape],
               missing=sorted(k for k in own if k not in state_dict and not k.endswith(_COUNTER)),
               unexpected=sorted(k for k in state_dict if k not in own),
               mismatched=mismatched,
               num_weights=sum(1 for k in own if not k.endswith(_COUNTER)))
