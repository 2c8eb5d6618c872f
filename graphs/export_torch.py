"""Exports a PyTorch model's forward pass to ONNX for training with ort-ademamix, and writes beside it the map from
the graph's initializers to the model's state_dict keys (`<model>.params.json`).

    python graphs/export_torch.py --model gpt --exporter dynamo --out art/model.onnx
    npx ademamix export --onnx art/model.onnx --params art/model.onnx.params.json --loss ce:targets --out art/train

As a library (your own model): `export(model, example_args, "model.onnx", exporter="dynamo", input_names=[...],
output_names=[...], dynamic={...})`.

Settings that keep a graph trainable (docs/interop.md explains each):
- dynamo: `optimize=False`, so weights are not constant-folded into anonymous `val_*` tensors (a folded `weight.T` is
  still found by value and marked `transpose`, but slices of weights, e.g. position rows for a static length, are not
  parameters any more); `dynamic_shapes` for the batch (and sequence) dims, for the same reason.
- TorchScript: `do_constant_folding=False`, for the same reason. It still de-duplicates initializers with equal values
  behind Identity nodes (fresh LayerNorm weights); the importer gives each such name its own tensor again.
- The model is exported in train mode, so Dropout exports in its training form.

The map lists, per parameter (tied ones once, with every state_dict key that names them) and per buffer, the
initializer holding it: by name when the exporter kept the name, else by value (equal, or equal transposed for 2-D).
`missing` lists state_dict keys found nowhere in the graph.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

MAP_FORMAT = "ademamix.torch-params/1"


def _graph_tensors(path):
    """Float initializers by name, plus the names TorchScript de-duplicated into them (Identity(init) -> name)."""
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    floats = {k: v for k, v in inits.items() if v.dtype.kind == "f"}
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in floats and n.output[0] not in inits:
            floats[n.output[0]] = floats[n.input[0]]
    return floats


def param_map(model: torch.nn.Module, onnx_path: str) -> dict:
    tensors = _graph_tensors(onnx_path)
    taken = set()

    def locate(keys, t):
        for k in keys:
            if k in tensors and k not in taken:
                taken.add(k)
                return {"onnx": k, "torch": keys}
        a = t.detach().cpu().numpy()
        for name, v in tensors.items():
            if name in taken:
                continue
            if v.shape == a.shape and np.array_equal(v, a):
                taken.add(name)
                return {"onnx": name, "torch": keys}
            if a.ndim == 2 and v.shape == a.T.shape and np.array_equal(v, a.T):
                taken.add(name)
                return {"onnx": name, "torch": keys, "transpose": True}
        return None

    def groups(named):
        by_id = {}
        for k, t in named:
            by_id.setdefault(id(t), (t, []))[1].append(k)
        return list(by_id.values())

    state_keys = set(model.state_dict().keys())
    params, buffers, missing = [], [], []
    for t, keys in groups(model.named_parameters(remove_duplicate=False)):
        e = locate(keys, t)
        (params.append(e) if e else missing.extend(keys))
    for t, keys in groups(model.named_buffers(remove_duplicate=False)):
        keys = [k for k in keys if k in state_keys]  # non-persistent buffers are not in the state_dict
        if not keys:
            continue
        e = locate(keys, t)
        (buffers.append(e) if e else missing.extend(keys))
    return {"format": MAP_FORMAT, "params": params, "buffers": buffers, "missing": missing}


def export(model, args, path, exporter="dynamo", input_names=None, output_names=None, dynamic=None, opset=None):
    """Exports `model(*args)` to `path` and writes `path + '.params.json'`. `dynamic`: {input name: {axis: dim name}}."""
    model.train()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if exporter == "torchscript":
        dyn_axes = dict(dynamic or {})
        torch.onnx.export(model, args, path, dynamo=False, opset_version=opset or 17, do_constant_folding=False,
                          input_names=input_names, output_names=output_names, dynamic_axes=dyn_axes or None)
    elif exporter == "dynamo":
        shapes = None
        if dynamic:
            dims = {}
            shapes = {}
            for inp, axes in dynamic.items():
                shapes[inp] = {ax: dims.setdefault(name, torch.export.Dim(name, **_bounds(model, name)))
                               for ax, name in axes.items()}
        torch.onnx.export(model, args, path, dynamo=True, optimize=False, opset_version=opset,
                          input_names=input_names, output_names=output_names, dynamic_shapes=shapes, verbose=False)
    else:
        raise ValueError(f"unknown exporter '{exporter}' (have: torchscript, dynamo)")
    pm = param_map(model, path)
    with open(path + ".params.json", "w") as f:
        json.dump(pm, f, indent=1)
    if pm["missing"]:
        print(f"warning: {len(pm['missing'])} state_dict tensors are not initializers of the graph: "
              f"{', '.join(pm['missing'])}", file=sys.stderr)
    return pm


def _bounds(model, dim_name):
    # a sequence dim cannot exceed the model's block size (mask buffers and position tables are sliced by it)
    block = getattr(getattr(model, "config", None), "block_size", None)
    return {"max": block} if dim_name == "seq" and block else {}


def export_fixture(name, exporter, path, opset=None):
    """Exports one of graphs/torch_models.py's models (seed 0) the way the tests do."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_models import build, example_inputs
    model = build(name)
    args = example_inputs(name)
    inp = "tokens" if name == "gpt" else "images"
    dynamic = {inp: {0: "batch", 1: "seq"} if name == "gpt" else {0: "batch"}}
    if exporter == "torchscript":
        dynamic["logits"] = {0: "batch", 1: "seq"} if name == "gpt" else {0: "batch"}
    return model, export(model, args, path, exporter, [inp], ["logits"], dynamic, opset)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["gpt", "vit"], default="gpt")
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], default="dynamo")
    ap.add_argument("--opset", type=int, default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    _, pm = export_fixture(a.model, a.exporter, a.out, a.opset)
    print(f"wrote {a.out} and {a.out}.params.json ({len(pm['params'])} parameters, {len(pm['buffers'])} buffers)")


if __name__ == "__main__":
    main()
