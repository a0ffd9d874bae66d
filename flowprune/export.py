"""Export a run's final model (or any flowprune model file) and check it against PyTorch.

    flowprune export <run_id | model.pt> [--results-dir results] [--format onnx] [--out FILE]

Reads the run's record for its final checkpoint (runs saved with ``save_checkpoints=true``), writes
``<out>`` (default: beside the checkpoint, ``model.onnx``) and prints ONNX Runtime's max |difference| from PyTorch
on a batch; exit 2 with one line when the run, its checkpoint or the export packages are missing, or the outputs
differ by more than 1e-4. A run can export itself as it ends with ``measure.export=onnx``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.checkpoint import load_model, safe_load
from experiments.errors import UserError
from experiments.export import FORMATS, export_onnx
from experiments.results import ResultsStore
from flowprune.reports.common import fail


def model_file(target: str, results_dir: str) -> Path:
    """``target`` itself when it is a file, else the final checkpoint named by run ``target``'s record."""
    if Path(target).is_file():
        return Path(target)
    records = [r for r in ResultsStore(results_dir).records() if r.get("run_id") == target]
    records += [r for r in ResultsStore(results_dir).records(study_only=True) if r.get("run_id") == target]
    if not records:
        raise UserError(f"no file and no run '{target}' in {results_dir}/runs or {results_dir}/store "
                        f"(pass a run_id, or a model file; --results-dir sets the store)")
    final = (records[-1].get("checkpoints") or {}).get("final")
    if not final or not Path(final).is_file():
        raise UserError(f"run {target} has no final model file ({final}); re-run it with save_checkpoints=true")
    return Path(final)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", help="a run_id of the results store, or a model file saved by flowprune")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--format", default="onnx", choices=FORMATS)
    ap.add_argument("--out", default=None, help="the exported file (default: model.onnx beside the checkpoint)")
    args = ap.parse_args(argv)
    import torch

    try:
        path = model_file(args.target, args.results_dir)
        spec = safe_load(path)["spec"]
        model, _ = load_model(path)
        example = torch.zeros(1, int(spec["in_channels"]), int(spec["image_size"]), int(spec["image_size"]))
        out = export_onnx(model, example, args.out or path.with_name("model.onnx"))
    except UserError as exc:
        return fail(str(exc))
    print(f"{out['path']}: ONNX Runtime vs PyTorch max |diff| {out['max_abs_diff']:.2e} ({out['exporter']} exporter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
