"""Generic figure from the results store: mean ``--y`` ± std over seeds against ``--x``, one line per ``--hue``.

    flowprune plot --experiment sweep_example --x target --y test_acc --hue method [--logx]
    -> <out>/figures/<name>.png and .pdf (--out defaults to --results-dir)
"""
from __future__ import annotations

import sys

from flowprune.reports.common import matplotlib_agg, out_dir, plot_mean_std, report_parser, runs_or_exit, save_figure


def figure(df, x: str, y: str, hue: str, logx: bool = False, title: str = ""):
    """The matplotlib figure (pure: no files written)."""
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    plot_mean_std(ax, df, x, y, hue)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.grid(alpha=0.3)
    ax.legend(title=hue, fontsize=8)
    return fig


def main(argv=None) -> int:
    ap = report_parser(__doc__, wandb=False)
    ap.add_argument("--x", default="target", help="x key (any load_runs column, e.g. target, sparsity)")
    ap.add_argument("--y", default="test_acc", help="y metric")
    ap.add_argument("--hue", default="method", help="one line per value of this key")
    ap.add_argument("--logx", action="store_true", help="logarithmic x axis")
    ap.add_argument("--name", default=None, help="file stem (default <experiment>_<y>_vs_<x>)")
    args = ap.parse_args(argv)

    df = runs_or_exit(args.results_dir, args.experiment, [args.x, args.y, args.hue])
    name = args.name or f"{args.experiment.replace('/', '_')}_{args.y}_vs_{args.x}"
    paths = save_figure(figure(df, args.x, args.y, args.hue, args.logx, args.experiment), name,
                        out_dir(args, "figures"))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
