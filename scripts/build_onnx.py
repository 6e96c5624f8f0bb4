#!/usr/bin/env python3
"""Builds an ONNX graph of a Hugging Face BERT directory (config.json + model.safetensors), with
the `onnx` package's helpers, for the ONNX Runtime peer of `mlr-bench`.

The graph is the post-LN BERT mlr runs: embeddings (word + position + token type, LayerNorm),
then per layer self-attention (scaled dot product, additive -1e9 padding bias, softmax), output
projection + residual + LayerNorm, and the erf-GELU feed-forward + residual + LayerNorm.

Inputs: input_ids, attention_mask, token_type_ids (int64, [batch, seq]).
Outputs: last_hidden_state [batch, seq, hidden] (first, as transformers.js expects) and
sentence_embedding [batch, hidden] (masked mean, L2-normalised).

Usage: build_onnx.py MODEL_DIR OUT.onnx
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (F32 only; the header is JSON)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {meta['dtype']}, only F32 is supported")
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[base + start : base + end], dtype="<f4").reshape(meta["shape"])
    return out


def build(model_dir, out_path):
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    weights = read_safetensors(model_dir / "model.safetensors")
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    layers = config["num_hidden_layers"]

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(value, dtype=np.float32, label="c"):
        n = name(label)
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def weight(key, transpose=False):
        w = weights[key]
        if transpose:  # HF nn.Linear is [out, in]; MatMul wants [in, out]
            w = np.ascontiguousarray(w.T)
        inits.append(numpy_helper.from_array(w.astype(np.float32), key))
        return key

    def op(kind, inputs, **attrs):
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        return op("Add", [op("MatMul", [x, weight(f"{prefix}.weight", True)]), weight(f"{prefix}.bias")])

    def layer_norm(x, prefix):
        return op("LayerNormalization", [x, weight(f"{prefix}.weight"), weight(f"{prefix}.bias")], axis=-1, epsilon=eps)

    # Embeddings.
    words = op("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    seq = op("Gather", [op("Shape", ["input_ids"]), const([1], np.int64)], axis=0)  # [1]
    positions = op(
        "Slice",
        [weight("embeddings.position_embeddings.weight"), const([0], np.int64), seq, const([0], np.int64)],
    )  # [seq, hidden]
    types = op("Gather", [weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], axis=0)
    x = layer_norm(op("Add", [op("Add", [words, positions]), types]), "embeddings.LayerNorm")

    # Additive padding bias [batch, 1, 1, seq]: 0 for tokens, -1e9 for padding.
    mask_f = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = op("Mul", [op("Sub", [const(1.0), mask_f]), const(-1e9)])
    bias = op("Unsqueeze", [bias, const([1, 2], np.int64)])

    split_shape = const([0, 0, heads, head_dim], np.int64)
    merge_shape = const([0, 0, hidden], np.int64)
    scale = const(1.0 / np.sqrt(head_dim))
    for i in range(layers):
        p = f"encoder.layer.{i}"
        q = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.query"), split_shape])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.key"), split_shape])], perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.value"), split_shape])], perm=[0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(op("Add", [linear(context, f"{p}.attention.output.dense"), x]), f"{p}.attention.output.LayerNorm")
        inner = linear(x, f"{p}.intermediate.dense")
        gelu = op("Mul", [op("Mul", [inner, const(0.5)]), op("Add", [op("Erf", [op("Div", [inner, const(np.sqrt(2.0))])]), const(1.0)])])
        x = layer_norm(op("Add", [linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    # Masked mean pooling + L2 normalisation.
    m = op("Unsqueeze", [mask_f, const([2], np.int64)])
    sums = op("ReduceSum", [op("Mul", [x, m]), const([1], np.int64)], keepdims=0)
    counts = op("Max", [op("ReduceSum", [m, const([1], np.int64)], keepdims=0), const(1.0)])
    mean = op("Div", [sums, counts])
    norm = op("Max", [op("ReduceL2", [mean], axes=[1], keepdims=1), const(1e-12)])
    nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"]))

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    outs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden]),
        helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden]),
    ]
    graph = helper.make_graph(nodes, "bert", ints, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlr scripts/build_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(build(sys.argv[1], sys.argv[2]))
