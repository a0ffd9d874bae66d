"""The ``flowprune`` command and what it runs besides training: reports (tables, figures, claims, read from the
results store only) and benchmarks (ratios measured in one process).

    flowprune run [group=option ...] [key=value ...]     = python run.py ... (Hydra)
    flowprune study <name> ... [--jobs 2]                = python -m experiments.study ...
    flowprune table | plot [...]                          any records as a table / figure
    flowprune report <name> [...]                         one paper's table or figure, or the claims table
    flowprune bench <name> [...]                          a benchmark

Layers: ``flowprune`` imports the core (``experiments``) and the paper packages; nothing imports ``flowprune``.
"""
