"""Make the ONNX models the importer is tested on, and their reference numbers.

    python tests/data/make_onnx_models.py        # needs torch and skl2onnx (not test deps)

For each model NAME this writes `NAME.onnx` and `NAME.npz` holding
  in_<input>     the inputs fed to it
  out_<output>   onnxruntime's outputs on them (the exported model, as shipped)
  cot_<output>   a fixed random cotangent c per float output
  grad_<init>    PyTorch's gradient of the loss  L = sum_k sum(c_k * output_k)
                 with respect to each ONNX initializer that holds a trained tensor,
                 computed in train mode (batch norm uses batch statistics), and
  bn_<init>      for batch norm running statistics: their value after that step.
Initializer names are those the exporter gave; where it re-laid a tensor out
(the LSTM's gates) the gradient is re-laid out the same way.

`specs/data/digits_mlp.onnx` is the classifier `specs/finetune.dl` fine-tunes: a torch MLP
trained on half of the built-in 8x8 digits; `specs/data/digits_shifted.npz` is the other
half with every image moved one pixel down and right (the shifted task).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
torch.manual_seed(0)


def export(model, args, name, input_names, output_names, dynamic_axes, opset, fold=True):
    """The TorchScript exporter, in eval mode (fold=False keeps batch norm apart from the conv)."""
    model.eval()
    path = HERE / f"{name}.onnx"
    torch.onnx.export(model, args, str(path), input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                      do_constant_folding=fold)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    return m


def reference(name, model, m, feeds: dict, relayout=None):
    """Run onnxruntime on feeds; PyTorch's train-mode gradients of sum(c * out)."""
    sess = ort.InferenceSession(str(HERE / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(1)
    data = {f"in_{k}": v for k, v in feeds.items()}
    data.update({f"out_{k}": v for k, v in zip(names, outs)})
    cots = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in zip(names, outs)
            if v.dtype == np.float32}
    data.update({f"cot_{k}": v for k, v in cots.items()})
    model.train()
    model.zero_grad()
    args = [torch.from_numpy(feeds[i.name]) for i in sess.get_inputs()]
    res = model(*args)
    res = res if isinstance(res, tuple) else (res,)
    loss = sum((r * torch.from_numpy(cots[k])).sum() for k, r in zip(names, res) if k in cots)
    loss.backward()
    sd = dict(model.named_parameters())
    inits = {i.name for i in m.graph.initializer}
    for k, p in sd.items():
        if k in inits:
            data[f"grad_{k}"] = p.grad.numpy().copy()
    from onnx import numpy_helper
    for init in m.graph.initializer:         # weights the exporter stored transposed (MatMul)
        if f"grad_{init.name}" in data or init.name in sd:
            continue
        v = numpy_helper.to_array(init)
        for k, p in sd.items():
            w = p.detach().numpy()
            if w.ndim == 2 and w.T.shape == v.shape and np.array_equal(w.T, v):
                data[f"grad_{init.name}"] = p.grad.numpy().T.copy()
    for k, b in model.named_buffers():
        if k in inits and "running" in k:
            data[f"bn_{k}"] = b.numpy().copy()
    if relayout:
        data.update(relayout(sd, m))
    model.eval()
    np.savez(HERE / f"{name}.npz", **data)
    print(name, sorted(data))


# -- an MLP ---------------------------------------------------------------------
def mlp():
    net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 5))
    x = torch.randn(6, 12)
    m = export(net, (x,), "mlp", ["x"], ["logits"], {"x": {0: "batch"}, "logits": {0: "batch"}}, 13)
    reference("mlp", net, m, {"x": np.random.default_rng(2).normal(size=(7, 12)).astype(np.float32)})


# -- a CNN: conv, batch norm, pads, max / average / global pooling, flatten --------
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.c2 = nn.Conv2d(4, 6, 2, stride=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(x)))
        h = nn.functional.max_pool2d(h, 2)                       # 8 -> 4
        h = nn.functional.avg_pool2d(self.pad(h), 2, stride=1)   # 5 -> 4
        h = torch.relu(self.c2(h))                               # 4 -> 3
        h = nn.functional.adaptive_avg_pool2d(h, 1)
        return self.fc(torch.flatten(h, 1))


def cnn():
    net = CNN()
    with torch.no_grad():                           # non-trivial running statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 1, 8, 8)
    m = export(net, (x,), "cnn", ["x"], ["y"], {"x": {0: "batch"}, "y": {0: "batch"}}, 15, fold=False)
    reference("cnn", net, m, {"x": np.random.default_rng(3).normal(size=(5, 1, 8, 8)).astype(np.float32)})


# -- an LSTM (time-major) and a GRU read by a dense head ------------------------------
class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8)
        self.gru = nn.GRU(8, 5)
        self.fc = nn.Linear(5, 3)

    def forward(self, xs):
        hs, _ = self.lstm(xs)
        gs, g_last = self.gru(hs)
        return self.fc(g_last[0]), gs


def _rnn_relayout(sd, m):
    """ONNX LSTM gates are (i, o, f, c), torch's (i, f, g, o); GRU gates (z, r, h), torch's (r, z, n).
    W = weight_ih, R = weight_hh, B = [b_ih, b_hh]; each with a leading direction axis."""
    out = {}
    H = 8
    lstm = [0, 3, 1, 2]                       # torch blocks in ONNX order: i, o, f, g
    gru = [1, 0, 2]
    def re(t, order, h):
        return np.concatenate([t[k * h:(k + 1) * h] for k in order])[None]
    grads = {
        "lstm": (re(sd["lstm.weight_ih_l0"].grad.numpy(), lstm, H),
                 re(sd["lstm.weight_hh_l0"].grad.numpy(), lstm, H),
                 np.concatenate([re(sd["lstm.bias_ih_l0"].grad.numpy(), lstm, H)[0],
                                 re(sd["lstm.bias_hh_l0"].grad.numpy(), lstm, H)[0]])[None]),
        "gru": (re(sd["gru.weight_ih_l0"].grad.numpy(), gru, 5),
                re(sd["gru.weight_hh_l0"].grad.numpy(), gru, 5),
                np.concatenate([re(sd["gru.bias_ih_l0"].grad.numpy(), gru, 5)[0],
                                re(sd["gru.bias_hh_l0"].grad.numpy(), gru, 5)[0]])[None]),
    }
    inits = {i.name: i for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type in ("LSTM", "GRU"):
            g = grads["lstm" if node.op_type == "LSTM" else "gru"]
            for name, gv in zip(node.input[1:4], g):
                assert tuple(inits[name].dims) == gv.shape, (name, inits[name].dims, gv.shape)
                out[f"grad_{name}"] = gv.astype(np.float32)
    return out


def seq():
    net = Seq()
    xs = torch.randn(4, 2, 6)
    m = export(net, (xs,), "lstm", ["xs"], ["logits", "gs"],
               {"xs": {0: "T", 1: "batch"}, "logits": {0: "batch"}, "gs": {0: "T", 2: "batch"}}, 14)
    reference("lstm", net, m, {"xs": np.random.default_rng(4).normal(size=(5, 3, 6)).astype(np.float32)},
              relayout=_rnn_relayout)


# -- a 2-layer transformer encoder over token ids ----------------------------------
class Encoder(nn.Module):
    def __init__(self, vocab=11, d=16, heads=2, ff=32, classes=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(d, classes)
        with torch.no_grad():            # the layers start as copies: make every tensor distinct
            for p in self.parameters():
                p.add_(0.1 * torch.randn_like(p))

    def forward(self, ids):
        h = self.enc(self.emb(ids))
        return self.fc(h.mean(dim=1))


def transformer():
    net = Encoder()
    ids = torch.randint(0, 11, (3, 6))
    # the exporter bakes the traced batch and length into attention's reshapes: static shapes
    m = export(net, (ids,), "transformer", ["ids"], ["logits"], None, 17)
    reference("transformer", net, m, {"ids": np.random.default_rng(5).integers(0, 11, (3, 6))})


# -- scikit-learn's MLP through skl2onnx --------------------------------------------
def sklearn_mlp():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    clf = MLPClassifier((24,), max_iter=60, random_state=0).fit(X[:600], y[:600])
    m = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}, target_opset=15)
    onnx.save(m, str(HERE / "skl_mlp.onnx"))
    sess = ort.InferenceSession(str(HERE / "skl_mlp.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"X": X[600:640]}
    outs = sess.run(None, feeds)
    data = {"in_X": feeds["X"]}
    data.update({f"out_{o.name}": v for o, v in zip(sess.get_outputs(), outs)})
    np.savez(HERE / "skl_mlp.npz", **data)
    print("skl_mlp", sorted(data), [n.op_type for n in m.graph.node])


# -- the digits classifier specs/finetune.dl starts from ------------------------------
def shift_images(x, dy, dx):
    """8x8 images moved dy rows down and dx columns right (zeros shifted in)."""
    im = x.reshape(-1, 8, 8)
    out = np.zeros_like(im)
    out[:, dy:, dx:] = im[:, :8 - dy, :8 - dx]
    return out.reshape(-1, 64)


def digits_mlp():
    """specs/data/digits_mlp.onnx: an MLP trained on half of the built-in digits; and
    specs/data/digits_shifted.npz: the other half, every image moved one pixel down and
    one right -- the shifted task specs/finetune.dl fine-tunes it on."""
    from collections import OrderedDict
    d = np.load(HERE.parents[1] / "runtime" / "datasets" / "digits.npz")
    X, y = d["x"], d["y"]
    idx = np.random.default_rng(0).permutation(len(X))
    a, b = idx[: len(X) // 2], idx[len(X) // 2:]
    Xa, ya = torch.from_numpy(X[a]), torch.from_numpy(y[a]).long()
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict([("fc1", nn.Linear(64, 64)), ("act1", nn.ReLU()),
                                     ("fc2", nn.Linear(64, 64)), ("act2", nn.ReLU()),
                                     ("out", nn.Linear(64, 10))]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xa), ya).backward()
        opt.step()
    acc = (net(Xa).argmax(1) == ya).float().mean().item()
    specs = HERE.parents[1] / "specs" / "data"
    net.eval()
    torch.onnx.export(net, (Xa[:2],), str(specs / "digits_mlp.onnx"), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13, dynamo=False)
    np.savez(specs / "digits_shifted.npz", x=shift_images(X[b], 1, 1), y=y[b])
    print("digits_mlp train acc:", acc, "; shifted examples:", len(b))


if __name__ == "__main__":
    mlp()
    cnn()
    seq()
    transformer()
    sklearn_mlp()
    digits_mlp()
