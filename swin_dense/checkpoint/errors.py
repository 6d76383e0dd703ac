"""Errors of the checkpoint package; their messages say what is wrong and how to fix it."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot or must not be loaded; the message says why and what to do."""


class NotSwinV2Checkpoint(CheckpointError):
    """The state dict matches none of the known SwinV2 layouts."""
