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


def _to_onnx(net: nn.Module, example: torch.Tensor, f, opset: int) -> str:
    """Write eval-mode ``net`` to ``f`` (a path or a binary buffer) with a dynamic batch axis; the exporter used."""
    dynamo = importlib.util.find_spec("onnxscript") is not None and not hasattr(f, "write")
    with warnings.catch_warnings():   # the TorchScript exporter announces its deprecation on every call
        warnings.simplefilter("ignore")
        kwargs = {} if dynamo else {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}}
        torch.onnx.export(net, (example,), f if hasattr(f, "write") else str(f), input_names=["input"],
                          output_names=["logits"], opset_version=opset, dynamo=dynamo, **kwargs)
    return "dynamo" if dynamo else "torchscript"


class OnnxRuntimeModule(nn.Module):
    """``model`` exported to ONNX in memory and run by ONNX Runtime on CPU with ``threads`` intra-op threads
    (torch's count by default): a timing form of :mod:`experiments.measure`. Input and output are torch tensors."""

    def __init__(self, model: nn.Module, example: torch.Tensor, threads: int | None = None, opset: int = 17):
        super().__init__()
        _require("onnx")
        _require("onnxruntime")
        import io

        import onnxruntime as ort

        buf = io.BytesIO()
        _to_onnx(model.to("cpu").eval(), example.to("cpu"), buf, opset)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: x.contiguous().numpy()})[0])


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
    exporter = _to_onnx(net, example, path, opset)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((check_batch, *example.shape[1:]), generator=g, dtype=example.dtype)
    with torch.no_grad():
        want = net(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    diff = float(np.max(np.abs(got - want)))
    if not diff <= atol:
        raise ExportMismatch(f"{path}: ONNX Runtime's outputs differ from PyTorch's by {diff:.2e} > {atol:.0e}")
    return {"path": str(path), "max_abs_diff": diff, "exporter": exporter}
