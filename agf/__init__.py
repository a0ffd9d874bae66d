"""AGF utility (arXiv 2603.12354): structural pruning with an absolute feature-space Taylor score.

Modules: ``calibration`` (one forward+backward pass over T batches feeding every scorer), ``scorers`` (the scorer
zoo: one class per scorer, ``create_scorer``), ``method`` (``StructuredPruning``, the pipeline's ``method=structured``), ``analysis``
(selection stability, signal compression) and ``reported`` (the paper's numbers). Channel units, selection and
physical removal are the core's (``experiments.sparsity``).
"""
