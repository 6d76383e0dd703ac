"""The numerics-sensitive tests again, on the AVX2 kernels, so that an AVX-512 machine checks them too.

torch picks its CPU kernels by the instruction set it finds: ATen's own (``ATEN_CPU_CAPABILITY``),
oneDNN's (``ONEDNN_MAX_CPU_ISA``, used by the fused Linear layers and SDPA) and MKL's
(``MKL_ENABLE_INSTRUCTIONS``, the matrix products). Kernels for AVX2 and AVX-512 sum in other
orders, so fp32 results differ by rounding between machines (tests/numerics.py). The suite's
``numerics`` tests run here in a subprocess with all three capped at AVX2, the instruction set of
the smallest x86 machines we support.
"""
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

AVX2 = {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2'}


def test_numerics_hold_on_avx2_kernels():
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ('DEFAULT', 'NO AVX'):
        pytest.skip(f'this CPU has no AVX2 ({capability}); the suite itself ran on its kernels')
    if capability == 'AVX2':
        pytest.skip('this CPU\'s best kernels are the AVX2 ones: the suite itself just ran the numerics on them')
    env = {**os.environ, **AVX2}
    probe = subprocess.run([sys.executable, '-c', 'import torch; print(torch.backends.cpu.get_cpu_capability())'],
                           env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == 'AVX2', f'the AVX2 caps did not take (a misspelt variable is ignored): {probe}'
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-m', 'numerics', '-q', '-p', 'no:cacheprovider', '-n', '0',
                           '-W', 'ignore', 'tests'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f'numerics tests fail on AVX2 kernels:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}'
    assert ' passed' in proc.stdout.splitlines()[-1] and 'skipped' not in proc.stdout.splitlines()[-1], \
        proc.stdout[-2000:]
