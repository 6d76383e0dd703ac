"""How the suite compares floating-point results of two implementations, and why these bounds.

Two correct fp32 implementations of the same math differ by rounding: the order in which the
CPU's kernels sum products changes with the instruction set (AVX2 vs AVX-512 oneDNN / MKL
kernels), with fused vs plain paths (oneDNN inner product vs ``addmm``, SDPA vs eager attention),
and with the peer library's own op order. An absolute fp32 bound on unnormalised outputs is a
promise no CPU can keep across machines. So a numerical comparison here has two parts:

1. **Same math, in float64.** Both sides run the same weights and input in float64, where
   rounding is about 1e-16 relative; :data:`F64_RTOL` (1e-9 of the compared tensor's magnitude)
   leaves a margin of about 1e5 over float64 rounding through a tiny model, yet is 1e6 times
   below what a real defect does (a missing bias, a wrong mask, swapped channels all move outputs
   by 1e-3 or more; tests/models/backbones/test_parity.py shows each one failing).
2. **fp32 accuracy.** Our fp32 result must be within :data:`FP32_RTOL` (3e-5 of the magnitude of
   the float64 reference, max |reference|) of that reference. fp32 unit roundoff is 6e-8; the
   features compared pass through up to 8 blocks of LayerNorm, 4C-long dot products, softmax
   over logits scaled by up to 100 and residual sums, each of which amplifies it. Measured with
   the suite (its summary line prints the worst case of each run), the worst relative errors
   were 3.8e-6 (parity tests) and 7.2e-6 (converter tests, whose random weights have logit scales
   up to 5 and LayerNorm weights N(1, 0.5)) on AVX2 and AVX-512 kernels; HF's own fp32 run is
   5.8e-6 from its float64 run in the same converter test. 3e-5 leaves a margin of 4 over the
   worst seen, and stays 100 times below what each defect of
   test_parity.py::test_parity_check_catches_real_defects does.

The reference of (2) is a float64 run of the peer (or of our own eager, official op order), not
another fp32 run, so the peer's own fp32 noise never counts against us.
"""
from typing import Dict, Sequence, Tuple

import torch

F64_RTOL = 1e-9
FP32_RTOL = 3e-5
#: The largest error of a passing check in the current test, relative to the compared magnitude:
#: ``{check: (error, what)}``; conftest collects them and prints the worst of the run, so every run shows
#: the margin its CPU left.
WORST: Dict[str, Tuple[float, str]] = {}


def _record(check: str, relative: float, what: str) -> None:
    if relative > WORST.get(check, (-1.0, ''))[0]:
        WORST[check] = (relative, what)


def magnitude(t: torch.Tensor) -> float:
    """max |t|, at least 1 (bounds are relative to the compared tensor's scale, absolute below 1)."""
    return max(1.0, t.detach().abs().max().item())


def max_error(actual: torch.Tensor, expected: torch.Tensor, what: str) -> float:
    """max |actual - expected| in float64, after checking the shapes agree."""
    assert actual.shape == expected.shape, f'{what}: {tuple(actual.shape)} vs {tuple(expected.shape)}'
    return (actual.detach().double() - expected.detach().double()).abs().max().item()


def assert_same_math(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Two float64 results of the same weights and input agree to float64 rounding (:data:`F64_RTOL`)."""
    assert actual.dtype == expected.dtype == torch.float64, f'{what}: compare float64 runs ({actual.dtype})'
    err, bound = max_error(actual, expected, what), F64_RTOL * magnitude(expected)
    assert err <= bound, f'{what}: float64 results differ by {err:.3g} > {bound:.3g}: not the same math'
    _record('float64 same math', err / magnitude(expected), what)


def assert_fp32_close(actual: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    """An fp32 result is within :data:`FP32_RTOL` of the magnitude of a float64 reference of the same math."""
    assert actual.dtype == torch.float32 and reference.dtype == torch.float64, \
        f'{what}: compare an fp32 result with a float64 reference ({actual.dtype}, {reference.dtype})'
    err, bound = max_error(actual, reference, what), FP32_RTOL * magnitude(reference)
    assert err <= bound, (f'{what}: fp32 result is {err:.3g} from the float64 reference, over {bound:.3g} '
                          f'({FP32_RTOL:g} of max |reference| {magnitude(reference):.3g})')
    _record('fp32 vs float64 reference', err / magnitude(reference), what)


def assert_matches(ours32: Sequence[torch.Tensor], ours64: Sequence[torch.Tensor],
                   reference64: Sequence[torch.Tensor], what: str) -> None:
    """Both checks for each compared tensor: float64 same math, fp32 accuracy against the float64 reference."""
    assert len(ours32) == len(ours64) == len(reference64), what
    for i, (a32, a64, ref) in enumerate(zip(ours32, ours64, reference64)):
        assert_same_math(a64, ref, f'{what} {i}')
        assert_fp32_close(a32, ref, f'{what} {i}')
