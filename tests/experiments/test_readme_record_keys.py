"""The record keys the README documents are the keys a run writes (one tiny closed-loop Hyperflows run)."""
from __future__ import annotations

import re

from conftest import ROOT, TINY, compose_cfg

from experiments.pipeline import run


def documented_keys(text: str) -> tuple[set[str], set[str]]:
    """(top-level keys, metrics keys) named in the README's Results section and as ``metrics.<key>``."""
    section = text.split("### Results", 1)[1].split("\n- ", 1)[0]
    listed = re.search(r"Keys: `(.*?)`", section, re.S).group(1)
    metrics_part = re.search(r"metrics\{(.*?)\}", listed, re.S).group(1)
    stages_removed = re.sub(r"\w+\{.*?\}", lambda m: m.group(0).split("{")[0], listed, flags=re.S)
    top = {k.strip() for k in stages_removed.replace("\n", " ").split(",") if k.strip()}
    metrics = {k.strip() for k in metrics_part.replace("\n", " ").split(",") if k.strip() not in ("", "…")}
    metrics |= set(re.findall(r"`metrics\.([a-z_0-9]+)`", text))
    metrics |= set(re.findall(r"/ `([a-z_0-9]+)` \(per fine-tune epoch\)", text))
    return top, metrics


def test_every_record_key_the_readme_names_is_written(tmp_path):
    top, metrics = documented_keys((ROOT / "README.md").read_text())
    assert {"run_id", "metrics", "stage_seconds", "git_commit"} <= top and len(metrics) >= 15   # the parse found them
    record = run(compose_cfg(TINY + ["method=hyperflows", "trainer.epochs=4", "method.pruning_epochs=2",
                                     "method.figures=false", "sparsity.target=0.5",
                                     "measure.dense_latency=true"], tmp_path))   # the default; TINY turns it off
    assert record["status"] == "ok"
    assert top - set(record) == set()
    assert metrics - set(record["metrics"]) == set()
