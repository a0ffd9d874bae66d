"""Hyperflows (arXiv 2504.05349) and the unstructured baselines it is compared with.

- ``pressure`` / ``scheduler``: the global pressure, Algorithm 1, the closed-loop density hold and the regrowth
  flow-LR schedule; ``method``: ``method=hyperflows`` (its flow masks are ``experiments.sparsity.flow_mask``);
- ``magnitude``, ``gmp``, ``rigl``, ``granet``, ``snip``, ``synflow``, ``grasp``: the baselines, compositions of the
  core's masks, schedules and drop/grow rules (``experiments.sparsity``) over ``masked_method`` /
  ``scheduled_method``;
- ``power_law``: sparsity–pressure fits; ``reported``: the paper's numbers; ``figures``: per-run plots.

This package imports only the core (``experiments``) and libraries, never ``agf`` or ``routing``.
"""
