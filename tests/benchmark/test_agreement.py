"""swin_dense.benchmark.agreement: where timm is comparable, and the per-stage comparison of rows."""
import pytest
import torch

from swin_dense.benchmark.agreement import checked_grad, compare_rows, grad_rel_diff, stage_outputs, timm_comparable


@pytest.mark.parametrize('size, ok, why', [
    ((128, 128), True, ''),  # stage maps 32, 16, 8, 4: whole windows of 4 everywhere
    ((112, 144), False, 'timm #2438'),  # stage 1 is 14x18: shifted windows of 4 that do not divide it
    ((130, 128), False, 'divisible by the patch size'),
])
def test_timm_comparable(size, ok, why):
    got, reason = timm_comparable(*size, 4, 4)
    assert got is ok and why in reason


def test_timm_comparable_names_a_window_disagreement():
    # window 6 at 48x48: stage maps 12, 6, 3, 2 (ceil); timm floors stage 3 to 12 // 8 = 1 and picks window 1
    ok, why = timm_comparable(48, 48, 4, 6)
    assert not ok and why.startswith('stage 3 (2x2): timm picks window 1x1'), why


def _outputs(*values):
    return tuple(torch.full((1, 2, 2, 2), float(v)) for v in values)


def test_compare_rows():
    rows = {name: {} for name in ('swin_dense', 'mmpretrain', 'timm', 'broken', 'other_shape')}
    outputs = {'swin_dense': _outputs(1, 2), 'mmpretrain': _outputs(1.5, 2), 'timm': _outputs(1, 2),
               'other_shape': (torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, 2))}
    grads = {'swin_dense': torch.tensor([2.0, -4.0]), 'mmpretrain': torch.tensor([2.0, -3.0])}
    compare_rows(rows, outputs, grads, (112, 144), 4, 4)
    assert rows['swin_dense'] == {'max_abs_diff': None, 'grad_rel_diff': None}
    assert rows['mmpretrain'] == {'max_abs_diff': [0.5, 0.0], 'grad_rel_diff': 0.25, 'compare': 'compared'}
    assert rows['timm']['max_abs_diff'] is None and rows['timm']['compare'].startswith('not compared: stage 1')
    assert rows['broken'] == {'max_abs_diff': None, 'grad_rel_diff': None}  # it failed: no outputs
    assert rows['other_shape']['compare'].startswith('output shapes differ')


def test_nothing_is_compared_without_the_reference():
    rows = {'swin_dense': {}, 'mmpretrain': {}}
    compare_rows(rows, {'mmpretrain': _outputs(1)}, {}, (128, 128), 4, 4)
    assert rows['mmpretrain'] == {'max_abs_diff': None, 'grad_rel_diff': None}


def test_grad_rel_diff_needs_both():
    assert grad_rel_diff(None, torch.ones(2)) is None and grad_rel_diff(torch.ones(2), None) is None
    assert grad_rel_diff(torch.zeros(2), torch.zeros(2)) == 0.0


def test_stage_outputs_and_checked_grad():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.9))
    model.forward = lambda x, f=model.forward: (f(x), f(x))
    x = torch.randn(2, 3)
    a, b = stage_outputs(model, x)
    assert not model.training and torch.equal(a, b) and a.dtype == torch.float32 and not a.requires_grad
    grad = checked_grad(model, x, lambda: model[0].weight)
    assert grad.shape == (3, 3) and model[0].weight.grad is None
