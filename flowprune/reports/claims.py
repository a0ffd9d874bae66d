"""The claims table: every paper claim the study tests, with our proxy's paired Δ, its CI and a verdict.

    flowprune report claims [--results-dir results] [--out DIR]   -> <out>/tables/claims.{md,csv}

Verdicts (experiments/stats.py): *holds* (the 95 % CI of the paired difference excludes 0 in the paper's
direction), *contradicted* (it excludes 0 the other way), *inconclusive* (it contains 0). Claims whose study has
no records yet are listed as "not run".
"""
from __future__ import annotations

import sys

import pandas as pd

from flowprune.reports import study, study_agf, study_pattern, study_routing, study_selection, study_structured
from flowprune.reports.common import out_dir, report_parser, write_table

COLUMNS = ["id", "paper", "setting", "ours", "delta", "verdict", "command"]
HEADERS = {"id": "claim", "paper": "paper's statement and number", "setting": "our proxy", "ours": "our numbers",
           "delta": "paired Δ (95% CI, wins)", "verdict": "verdict", "command": "reproduce"}
#: claims of the study issue still without records: id -> what they test
PLANNED = {
    "H1": "Hyperflows matches or beats every baseline at 90/95/98 % (Table 1)",
    "H3": "regrowth recovers accuracy after pruning (same final sparsity and budget)",
    "C1": "the paper's open-loop controller (Algorithm 1 + fixed rho) delivers the asked sparsity",
    "H2": "sparsity-pressure power law (eq. 15 vs pure law) on runs whose smallest λ has stopped moving",
    "A1": "AGF best scorer at 75 % channel removal (stress test)",
    "A2": "phase transition: inherited weights collapse vs scratch at extreme width",
    "A3": "ViT MLP bottleneck: AGF vs Wanda/RIA, T = 10 vs 100",
    "A4": "routing: escalation rate and cost at full-model accuracy",
    "A5": "selection stability and signal compression",
    "S1": "ours: learned channel flows (structured Hyperflows) >= AGF at equal MACs",
    "S1-vit": "ours: learned MLP-neuron flows (structured Hyperflows) >= AGF at equal MACs on vit_micro",
    "N1": "ours: an N:M mask costs accuracy against an unstructured mask of the same sparsity",
}


def build(results_dir) -> pd.DataFrame:
    rows = (study.claims(results_dir) + study_agf.claims(results_dir) + study_routing.claims(results_dir)
            + study_selection.claims(results_dir) + study_structured.claims(results_dir)
            + study_pattern.claims(results_dir))
    have = {r["id"].split()[0] for r in rows}
    for cid, what in PLANNED.items():
        if cid not in have:
            rows.append({"id": cid, "paper": what, "setting": "", "ours": "", "delta": "",
                         "verdict": "not run yet (< 3 paired seeds)", "command": "make study"})
    return pd.DataFrame(rows, columns=COLUMNS).rename(columns=HEADERS)


def main(argv: list[str] | None = None) -> int:
    args = report_parser(__doc__, experiment="", wandb=False).parse_args(argv)
    df = build(args.results_dir)
    path = write_table(df, "claims", out_dir(args, "tables"), "Claims of both papers on our CPU proxies "
                       "(`flowprune report claims`); verdicts from paired seeds, see the README's protocol.")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
