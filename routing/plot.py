"""Per-run figure: accuracy vs relative cost under both conventions, static points, random line,
Pareto points and the chosen operating point."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_routing(curve: pd.DataFrame, static: dict, chosen: dict, path: Path, title: str = "") -> Path:
    """``curve``: the sweep of the main policy; ``static``: acc_full, acc_pruned, cost_pruned (relative);
    ``chosen``: the operating-point row. Writes ``path`` (png) and a pdf beside it."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    c_p, a_f, a_p = static["cost_pruned"], static["acc_full"], static["acc_pruned"]
    ax.plot(curve["cost_mixture"], curve["acc_test"], "-", color="C0", lw=1.4, label="adaptive, mixture cost (paper)")
    ax.plot(curve["cost_cascade"], curve["acc_test"], "-", color="C1", lw=1.4, label="adaptive, cascade cost")
    front = curve[curve["pareto"]]
    ax.plot(front["cost_cascade"], front["acc_test"], "o", ms=2.5, color="C1", alpha=0.6)
    ax.plot([c_p, 1.0], [a_p, a_f], ":", color="gray", label="random, mixture")
    ax.plot([c_p, c_p + 1.0], [a_p, a_f], "--", color="gray", lw=0.8, label="random, cascade")
    ax.plot([1.0], [a_f], "s", color="k", label=f"static full ({a_f:.2f}%)")
    ax.plot([c_p], [a_p], "^", color="k", label=f"static pruned ({a_p:.2f}%, {c_p:.2f}×)")
    for key, color in (("cost_mixture", "C0"), ("cost_cascade", "C1")):
        ax.plot([chosen[key]], [chosen["acc_test"]], "*", ms=13, color=color, mec="k")
    ax.annotate(f"τ chosen on val: esc {chosen['escalation_test']:.1%}", (chosen["cost_cascade"], chosen["acc_test"]),
                textcoords="offset points", xytext=(6, -14), fontsize=8)
    ax.axhline(a_f, color="k", lw=0.5, alpha=0.3)
    ax.set_xlabel("relative cost (MACs / full model)")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(title or "pruned → full routing")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path
