"""Reports: tables and figures rebuilt from the results store (``flowprune report <name>``, ``table``, ``plot``)."""
