"""``python -m flowprune`` = the ``flowprune`` command."""
from flowprune.cli import main

raise SystemExit(main())
