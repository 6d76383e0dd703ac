"""SwinTransformerV2 under ``torch.compile``: captured by dynamo, same outputs and gradients.

The ``eager`` backend runs dynamo's capture (guards, graph breaks, the Python-side caches of masks
and position biases) and executes the captured graphs without code generation; inductor's C++ code
generation takes minutes on a 2-core CPU, so its speed is measured by ``tools/benchmark.py
--compile`` (docs/benchmarks.md), not here.
"""
import torch

from conftest import redraw_norms_
from swin_dense import SwinTransformerV2


def _model(**kwargs) -> SwinTransformerV2:
    torch.manual_seed(0)
    model = SwinTransformerV2(arch=dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]), window_size=8,
                              drop_path_rate=0.0, **kwargs)
    return redraw_norms_(model)


def test_compiled_forward_and_backward_match_eager():
    torch._dynamo.reset()
    x = torch.randn(1, 3, 97, 130)  # odd size: padding, shifted-window masks, window shrink in the last stage
    model = _model()
    compiled = torch.compile(model, backend='eager')
    with torch.no_grad():
        for out, ref in zip(compiled.eval()(x), model.eval()(x)):
            # dynamo's graph runs the same kernels (backend='eager'), but decomposes some ops (e.g. the fused Linear path is
            # not taken under compile): fp32 reordering through 5 blocks, as tests/numerics.py measures
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grads = []
    for fn in (model.train(), compiled.train()):
        model.zero_grad()
        sum(o.square().mean() for o in fn(x)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        # gradients: sums over all tokens in another order (relative 1e-4 of sums of ~1e4 terms)
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)
