"""Runtime variants of one exported model: each a ``run(inputs) -> fp32 logits`` and a file.

fp32 eager, TorchScript (a frozen trace per input shape), ONNX fp32 (dynamic batch and sequence
axes), ONNX Runtime int8 (``quantize_dynamic``, int8 weights of MatMul/Gemm), torch int8
(``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear``), bf16 eager (on CPUs with
AMX the bf16 matmuls run in hardware). The ONNX variants need ``pip install onnx onnxruntime``
and are skipped, with the reason, when either is missing (docs/deploy.md).
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

Inputs = dict[str, torch.Tensor]
VARIANTS = ("fp32_eager", "torchscript", "onnx_fp32", "onnx_int8", "torch_int8", "bf16")
ONNX_VARIANTS = ("onnx_fp32", "onnx_int8")


@dataclass
class Variant:
    """One runtime of a model: ``run(inputs)`` gives fp32 logits; ``path`` is its file."""

    name: str
    run: Callable[[Inputs], torch.Tensor]
    path: Path
    extra: dict = field(default_factory=dict)

    def size_bytes(self) -> int:
        """Bytes on disk of the variant's file (a folder: all its files)."""
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return self.path.stat().st_size


def input_names(model: torch.nn.Module) -> list[str]:
    """The inputs fed to every runtime (token types only for models that have them)."""
    types = getattr(model.config, "type_vocab_size", 0) or 0
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if types > 1 else [])


def onnx_missing() -> str | None:
    """Why the ONNX variants cannot run here, or None."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    return (f"{' and '.join(missing)} not installed (pip install onnx onnxruntime)"
            if missing else None)


def _logits(out) -> torch.Tensor:
    out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
    return out.float()


def eager(model: torch.nn.Module, names: list[str]) -> Callable[[Inputs], torch.Tensor]:
    """``model`` called on the named inputs, logits in fp32."""
    return lambda x: _logits(model(**{k: x[k] for k in names}))


def torchscript(model: torch.nn.Module, names: list[str]) -> Callable[[Inputs], torch.Tensor]:
    """A frozen, inference-optimized trace of ``model``, one per input shape (traced on use)."""
    cache: dict = {}

    def run(x: Inputs) -> torch.Tensor:
        args = tuple(x[k] for k in names)
        key = tuple(args[0].shape)
        if key not in cache:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # HF shape checks become trace constants
                traced = torch.jit.trace(model, args, strict=False)
                cache[key] = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return _logits(cache[key](*args))
    run.cache = cache  # type: ignore[attr-defined]
    return run


def export_onnx(model: torch.nn.Module, names: list[str], sample: Inputs, path: Path) -> Path:
    """``torch.onnx.export`` (TorchScript exporter) with dynamic batch and sequence axes."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(sample[k] for k in names), str(path), input_names=names,
                          output_names=["logits"], dynamo=False, opset_version=17,
                          dynamic_axes={**{k: {0: "batch", 1: "length"} for k in names},
                                        "logits": {0: "batch"}})
    return path


def quantize_onnx(fp32: Path, path: Path) -> Path:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    return path


def ort_runner(path: Path, names: list[str], threads: int) -> Callable[[Inputs], torch.Tensor]:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {k: x[k].numpy() for k in names})[0])


def torch_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` dynamically quantized to int8."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def build(model: torch.nn.Module, folder: Path, work: Path, sample: Inputs, threads: int,
          wanted: tuple[str, ...] = VARIANTS) -> tuple[dict[str, Variant], dict[str, str]]:
    """Every wanted variant of ``model`` (files under ``work``); and ``{skipped: reason}``."""
    work.mkdir(parents=True, exist_ok=True)
    names = input_names(model)
    model = model.eval()
    model.config.return_dict = False  # tuples, for the trace and the exporter
    out: dict[str, Variant] = {}
    skipped: dict[str, str] = {}
    weights = next(iter(sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))),
                   folder)
    for name in wanted:
        if name in ONNX_VARIANTS and onnx_missing():
            skipped[name] = onnx_missing() or ""
            continue
        if name == "fp32_eager":
            out[name] = Variant(name, eager(model, names), weights)
        elif name == "torchscript":
            run = torchscript(model, names)
            run(sample)
            path = work / "model.torchscript.pt"
            next(iter(run.cache.values())).save(str(path))  # type: ignore[attr-defined]
            out[name] = Variant(name, run, path)
        elif name == "onnx_fp32":
            path = export_onnx(model, names, sample, work / "model.onnx")
            out[name] = Variant(name, ort_runner(path, names, threads), path)
        elif name == "onnx_int8":
            fp32 = work / "model.onnx"
            if not fp32.is_file():
                export_onnx(model, names, sample, fp32)
            path = quantize_onnx(fp32, work / "model.int8.onnx")
            out[name] = Variant(name, ort_runner(path, names, threads), path)
        elif name == "torch_int8":
            small = torch_int8(model)
            path = work / "model.torch_int8.pt"
            torch.save(small.state_dict(), path)
            out[name] = Variant(name, eager(small, names), path)
        elif name == "bf16":
            half = copy.deepcopy(model).to(torch.bfloat16)
            path = work / "model.bf16.pt"
            torch.save(half.state_dict(), path)
            out[name] = Variant(name, eager(half, names), path)
    return out, skipped
