"""Export a (pruned) model to ONNX and check that ONNX Runtime computes what PyTorch computes.

Channels removed physically are absent from the exported graph; unstructured sparsity stays as zeros in dense
weights (ONNX Runtime has no general sparse kernels). The check runs one batch through both and compares the
outputs (max absolute difference, ``atol`` 1e-4 by default); a mismatch is an error, not a warning.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, UserError

FORMATS = ("onnx",)


class ExportMismatch(UserError, RuntimeError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"export needs the '{module}' package: pip install 'flowprune[deploy]' "
                          f"(onnx + onnxruntime)")


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, atol: float = 1e-4,
                check_batch: int = 8, opset: int = 17) -> dict:
    """Write ``model`` (eval mode, on CPU) to ``path`` with a dynamic batch axis, run ``check_batch`` random
    inputs shaped like ``example`` through ONNX Runtime and PyTorch, and return {path, max_abs_diff, exporter}."""
    _require("onnx")
    _require("onnxruntime")
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = model.to("cpu").eval()
    example = example.to("cpu")
    dynamo = importlib.util.find_spec("onnxscript") is not None
    with warnings.catch_warnings():   # the TorchScript exporter announces its deprecation on every call
        warnings.simplefilter("ignore")
        kwargs = {} if dynamo else {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}}
        torch.onnx.export(net, (example,), str(path), input_names=["input"], output_names=["logits"],
                          opset_version=opset, dynamo=dynamo, **kwargs)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((check_batch, *example.shape[1:]), generator=g, dtype=example.dtype)
    with torch.no_grad():
        want = net(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    diff = float(np.max(np.abs(got - want)))
    if not diff <= atol:
        raise ExportMismatch(f"{path}: ONNX Runtime's outputs differ from PyTorch's by {diff:.2e} > {atol:.0e}")
    return {"path": str(path), "max_abs_diff": diff, "exporter": "dynamo" if dynamo else "torchscript"}
