import torch

from swin_dense.layers.activation_checkpoint import checkpoint_if_grad_enabled


def _counted():
    calls = []

    def fn(x):
        calls.append(torch.is_grad_enabled())
        return x.sin() * 2

    return fn, calls


def test_checkpointed_exactly_while_grad_mode_is_on():
    """Grad mode decides, not a module's training flag: the piece is recomputed in backward (called
    twice) whenever autograd records, and run once, not checkpointed, under no_grad."""
    x = torch.randn(4, 3, requires_grad=True)
    fn, calls = _counted()
    out = checkpoint_if_grad_enabled(fn, x)
    out.sum().backward()
    assert len(calls) == 2
    torch.testing.assert_close(x.grad, 2 * x.detach().cos())
    fn, calls = _counted()
    with torch.no_grad():
        out = checkpoint_if_grad_enabled(fn, x)
    assert calls == [False] and not out.requires_grad
