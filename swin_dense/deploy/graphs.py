"""The module traced into ONNX for a segmentor (a detector's: :mod:`.detector`), as a tensor-in,
tensor-out function of the preprocessed (normalised, padded) batch."""
import torch
import torch.nn as nn

SEG_INPUTS = ['inputs']
SEG_OUTPUTS = ['seg_logits']


class SegmentorGraph(nn.Module):
    """mmseg ``EncoderDecoder.encode_decode`` in 'whole' mode: (1, 3, H, W) -> logits (1, K, H, W).

    The image meta the decode head reads (``img_shape``) is the input's own traced size, so the
    logits are resized to whatever size the graph is run at.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) normalised image -> (1, K, H, W) logits before softmax."""
        size = inputs.shape[2:]
        return self.segmentor.encode_decode(inputs, [dict(img_shape=size, pad_shape=size)])
