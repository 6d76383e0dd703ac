"""Errors of the checkpoint package; their messages say what is wrong and how to fix it."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot or must not be loaded; the message says why and what to do."""


class NotSwinV2Checkpoint(CheckpointError):
    """The state dict matches none of the known SwinV2 layouts."""


class SwinV1Checkpoint(NotSwinV2Checkpoint):
    """A Swin V1 state dict where SwinV2 weights are needed (:class:`SwinTransformerV2` cannot use it)."""
