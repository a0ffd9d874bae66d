"""Hybrid routing: a pruned expert first, the full model for inputs a zero-cost prior flags as hard.

AGF paper §4 ("build with AGF, walk with confidence"). Experts are model files (stage checkpoints);
this package never imports ``agf`` or ``hyperflows``. The pipeline's ``route`` stage instantiates
``routing.router.Router`` from ``conf/routing/<policy>.yaml`` and merges its metrics into the record.
"""
