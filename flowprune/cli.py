"""The ``flowprune`` command: one entry point for training runs, studies, reports and benchmarks.

Each subcommand hands its remaining arguments to the module that owns them (``--help`` there); user errors exit
with status 2 and one line.
"""
from __future__ import annotations

import importlib
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: ``flowprune report <name>``: modules of flowprune.reports
REPORTS = ("claims", "study", "table1", "power_law", "agf_stress", "agf_phase", "agf_selection", "agf_signal",
           "agf_vit", "routing")
#: ``flowprune bench <name>``: modules of flowprune.bench
BENCHES = ("agf", "gpu", "hyperflows", "semi", "sparse", "trainer")

USAGE = f"""usage: flowprune <command> [args]

commands:
  run [overrides]        a training run, = python run.py [overrides] (Hydra; -m for a multirun)
  study <name> ...       the reproduction study's grids (python -m experiments.study; --help there)
  table [--help]         any records as rows x columns, mean ± std over seeds
  plot [--help]          any records as a figure, mean ± std over seeds
  report <name> [...]    {', '.join(REPORTS)}
  bench <name> [...]     {', '.join(BENCHES)}
  export <run> [...]     a run's final model to ONNX, checked against PyTorch (--help there)

Reports read --results-dir (default results) and write <out>/tables and <out>/figures; benchmarks write
<out>/bench (--out defaults to the results dir).
"""


def _usage_error(message: str) -> int:
    print(f"error: {message} (flowprune --help lists the commands)", file=sys.stderr)
    return 2


def _call(module: str, argv: list[str]) -> int:
    """``module.main(argv)``; a main that returns None succeeded."""
    return importlib.import_module(module).main(argv) or 0


def _named(kind: str, names: tuple[str, ...], package: str, argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        return _usage_error(f"flowprune {kind} needs a name: one of {', '.join(names)}")
    if argv[0] not in names:
        return _usage_error(f"unknown {kind} '{argv[0]}'; choose one of {', '.join(names)}")
    return _call(f"{package}.{argv[0]}", argv[1:])


def run_training(argv: list[str]) -> int:
    """``python run.py argv``: the same file, so Hydra's config path, job name and preflight are the same."""
    sys.argv = [str(ROOT / "run.py"), *argv]
    runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(USAGE, file=sys.stderr)
        return _usage_error("flowprune needs a command")
    if argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        return run_training(rest)
    if command == "study":
        return _call("experiments.study", rest)
    if command == "table":
        return _call("flowprune.reports.table", rest)
    if command == "plot":
        return _call("flowprune.reports.plot", rest)
    if command == "report":
        return _named("report", REPORTS, "flowprune.reports", rest)
    if command == "export":
        return _call("flowprune.export", rest)
    if command == "bench":
        return _named("bench", BENCHES, "flowprune.bench", rest)
    return _usage_error(f"unknown command '{command}'")
