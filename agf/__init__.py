"""AGF utility (arXiv 2603.12354): structural pruning with an absolute feature-space Taylor score.

Modules: ``units`` (which channels/neurons are prunable, via torch-pruning dependency groups),
``calibration`` (one forward+backward pass over T batches feeding every scorer), ``scorers`` (the scorer zoo,
``create_scorer``), ``selection`` (per-layer / global top-k), ``removal`` (physical removal), ``method``
(``StructuredPruning``, the pipeline's ``method=structured``), ``analysis`` (selection stability, signal
compression) and ``reported`` (the paper's numbers).
"""
