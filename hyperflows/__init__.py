"""Hyperflows (arXiv 2504.05349) and the unstructured baselines that share its mask machinery.

- ``masking``: parametrize-based masks on every Conv2d/Linear weight, ``finalize``, pure mask rules;
- ``flow_mask``: the learnable flow parameter t, m = [t ≥ 0], constant-slope STE;
- ``pressure`` / ``scheduler``: the global pressure, Algorithm 1 and the regrowth flow-LR schedule;
- ``method``: ``method=hyperflows``; ``magnitude``, ``gmp``, ``rigl``, ``granet``, ``snip``, ``synflow``, ``grasp``:
  the baselines (``masked_method`` / ``scheduled_method`` bases, ``schedules`` and ``drop_grow`` rules);
  ``power_law``: sparsity–pressure fits; ``reported``: the paper's numbers; ``figures``: per-run plots.

This package imports only the core (``experiments``) and libraries, never ``agf`` or ``routing``.
"""
