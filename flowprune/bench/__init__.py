"""Benchmarks (``flowprune bench <name>``): speed and memory ratios measured inside one process.

Each writes ``<out>/bench/bench_<name>.*`` (``--out`` defaults to ``results``); they are not tests.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_out(ap: argparse.ArgumentParser, name: str, suffixes: str) -> None:
    """The one ``--out`` of every benchmark: a results root, under which ``bench/bench_<name>.<suffixes>``."""
    ap.add_argument("--out", default="results", help=f"writes <out>/bench/bench_{name}.{{{suffixes}}} (default results)")


def out_stem(out: str | Path, name: str) -> Path:
    """``<out>/bench/bench_<name>`` (its folder made); add a suffix for each file."""
    path = Path(out) / "bench" / f"bench_{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
