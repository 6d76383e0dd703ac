"""Speed, memory and agreement of swin_dense's SwinTransformerV2 against timm and mmpretrain.

The library behind ``tools/benchmark.py`` (which keeps the command line); docs/benchmarks.md has the
method and the results. One module per concern, imports pointing down this list:

* :mod:`.extras`: the optional dependencies (timm, mmpretrain, matplotlib: ``pip install
  swin_dense[bench]``), imported only where they are used;
* :mod:`.weights`: one seeded random state dict, in every peer's layout, and its round-trip check;
* :mod:`.peers`: building each implementation (swin_dense, compiled, unfused, timm, mmpretrain) with
  those weights, and switching its checkpointing;
* :mod:`.measurement`: steps, interleaved timing, peak memory;
* :mod:`.agreement`: stage outputs and a gradient compared with swin_dense's;
* :mod:`.runner`: one size end to end, as rows;
* :mod:`.report`: the rows as lines, a markdown table, JSON and a plot;
* :mod:`.profile`: the top ops of a profile, and a forward split by part with FLOP (``--time-parts``);
* :mod:`.chunk_sweep`: the time and memory of each per-stage sequential attention / MLP setting
  (``--chunk-sweep``), measured or traced;
* :mod:`.meta`, :mod:`.traced_memory`, :mod:`.memory_plan`: models with their parameters on the meta
  device, a training step's peak traced with fake tensors, and the per-GPU memory plan of
  tools/memory_plan.py.

Importing this package needs none of the optional dependencies.
"""
