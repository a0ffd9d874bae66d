"""Hyperflows (arXiv 2504.05349) and the unstructured baselines it is compared with.

- ``pressure`` / ``scheduler``: the global pressure, Algorithm 1, the closed-loop density hold and the regrowth
  flow-LR schedule; ``method``: ``method=hyperflows`` (its flow masks are ``experiments.sparsity.flow_mask``);
- ``magnitude``, ``gmp``, ``rigl``, ``granet``, ``snip``, ``synflow``, ``grasp``: the baselines, each a
  ``masked_method.MaskedMethod`` composed of its initial masks, its mask rules (GMP's cubic pruning, RigL's
  drop/grow, GraNet's regeneration) on the core's schedule objects and step clock, and its recipe;
- ``power_law``: sparsity–pressure fits; ``reported``: the paper's numbers; ``figures``: per-run plots.

This package imports only the core (``experiments``) and libraries, never ``agf`` or ``routing``.
"""
