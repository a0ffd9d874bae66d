"""What every sparsity method shares, whichever paper it comes from.

- ``masks``: parametrize-based masks on every Conv2d/Linear weight (``BinaryMask``), ``finalize``, global top-k;
- ``flow_mask``: the learnable flow parametrization m = [t ≥ 0] with its straight-through gradient;
- ``drop_grow`` and ``schedules``: the drop/grow rules and the pure sparsity schedules / layer allocations;
- ``units``, ``selection`` and ``removal``: prunable channel units (torch-pruning dependency groups), which
  channels survive, and their physical removal.

MAC/parameter counting and latency are ``experiments.measure``; AUROC is ``experiments.stats``.
"""
