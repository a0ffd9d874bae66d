"""Generic table from the results store: rows x columns of any record keys, cells mean ± std (n) over seeds
with the mean achieved sparsity, e.g. ``89.12 ± 0.10 (3) [s=0.900]``.

    flowprune table --experiment sweep_example --rows method --cols sparsity --name sweep_example
    -> <out>/tables/sweep_example.{md,csv,tex} (--out defaults to --results-dir)

Keys are columns of ``flowprune.reports.common.load_runs`` (method, model, dataset, target, seed, scorer, any metric);
several keys are comma-separated (``--cols model,target``). ``sparsity`` as a key means the target
(shown as "90%"); the achieved sparsity is always in the cell.
"""
from __future__ import annotations

import sys

from flowprune.reports.common import out_dir, pivot_cells, report_parser, runs_or_exit, write_table

ALIASES = {"sparsity": "target"}


def keys(arg: str) -> list[str]:
    """``"model,sparsity"`` -> ``["model", "target"]``."""
    return [ALIASES.get(k.strip(), k.strip()) for k in arg.split(",") if k.strip()]


def main(argv=None) -> int:
    ap = report_parser(__doc__, wandb=False)
    ap.add_argument("--rows", default="method", help="row key(s), comma-separated")
    ap.add_argument("--cols", default="sparsity", help="column key(s), comma-separated; sparsity = target")
    ap.add_argument("--metric", default="test_acc", help="metric averaged in the cells (default test_acc)")
    ap.add_argument("--name", default=None, help="output file stem (default: the experiment, '/' -> '_')")
    args = ap.parse_args(argv)

    rows, cols = keys(args.rows), keys(args.cols)
    df = runs_or_exit(args.results_dir, args.experiment, rows + cols + [args.metric])
    table = pivot_cells(df, rows, cols, args.metric)
    name = args.name or args.experiment.replace("/", "_")
    note = (f"Experiment `{args.experiment}`: {args.metric} mean ± std (n seeds) [s = mean achieved sparsity], "
            f"{len(df)} runs from `{args.results_dir}`.")
    path = write_table(table, name, out_dir(args, "tables"), note)
    print(f"wrote {path} (+ .csv, .tex)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
