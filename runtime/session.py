"""ONNX Runtime sessions on a chosen device, and the IOBinding step loop that
keeps carried tensors on that device between steps.

The same code path serves CPU and CUDA: only `Device` differs, so the CPU
provider exercises it in tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from .errors import DeviceError
from .files import session_source

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class Device:
    """Where tensors live: kind is 'cpu' or 'cuda'; index is the GPU number."""
    kind: str = "cpu"
    index: int = 0

    @staticmethod
    def parse(text: "str | Device") -> "Device":
        if isinstance(text, Device):
            return text
        kind, _, idx = str(text).lower().partition(":")
        if kind not in PROVIDERS:
            raise DeviceError(f"unknown device {text!r}; expected cpu, cuda or cuda:N")
        try:
            index = int(idx) if idx else 0
        except ValueError:
            raise DeviceError(f"unknown device {text!r}; expected cpu, cuda or cuda:N") from None
        return Device(kind, index)

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.kind}:{self.index}"


def check_device(device: Device) -> None:
    """Raise DeviceError when this onnxruntime cannot run on `device`."""
    available = ort.get_available_providers()
    if PROVIDERS[device.kind] not in available:
        raise DeviceError(
            f"{device.kind.upper()} was requested but this onnxruntime has no "
            f"{PROVIDERS[device.kind].replace('ExecutionProvider', '')} provider "
            f"(available: {', '.join(available)}); install the gpu extra: pip install -e '.[gpu]'")


def make_session(model: onnx.ModelProto, device: "str | Device" = "cpu", threads: int | None = None,
                 optimize: bool = True) -> ort.InferenceSession:
    """An InferenceSession for `model` on `device` ('cpu', 'cuda', 'cuda:N').

    threads: intra-op threads (None: onnxruntime's default). Sessions run
    sequentially with deterministic compute requested, so equal inputs give
    equal outputs run after run. Never falls back to the CPU silently."""
    dev = Device.parse(device)
    check_device(dev)
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.use_deterministic_compute = True
    so.log_severity_level = 3   # errors only; ORT's warnings are not the user's business
    # flush denormals to zero: tiny gradients and Adam moments otherwise slow every op ~10x
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if dev.kind == "cuda":
        providers = [(PROVIDERS["cuda"], {"device_id": dev.index, "cudnn_conv_algo_search": "HEURISTIC"}),
                     PROVIDERS["cpu"]]
    else:
        providers = [PROVIDERS["cpu"]]
    try:
        with session_source(model) as src:     # bytes, or a path with external data (> 2 GB)
            sess = ort.InferenceSession(src, sess_options=so, providers=providers)
    except Exception as e:  # ORT raises its own exception types for bad graphs
        raise DeviceError(f"onnxruntime could not load the model on {dev}: {e}") from None
    if dev.kind == "cuda" and PROVIDERS["cuda"] not in sess.get_providers():
        raise DeviceError(f"CUDA was requested but onnxruntime could not start its CUDA provider "
                          f"(session providers: {', '.join(sess.get_providers())})")
    return sess


def to_device(array: np.ndarray, device: Device) -> ort.OrtValue:
    """Copy a host array into an OrtValue on `device`."""
    # np.asarray, not np.ascontiguousarray: the latter turns 0-d scalars into shape [1]
    return ort.OrtValue.ortvalue_from_numpy(np.asarray(array, order="C"), device.kind, device.index)


class BoundRunner:
    """Runs one session with IOBinding.

    run(device_inputs, host_inputs, device_outputs, host_outputs):
      device_inputs:  name -> OrtValue already on the device (carried state),
      host_inputs:    name -> numpy array, copied in (the batch, scalars),
      device_outputs: names whose results stay on the device (returned as OrtValues),
      host_outputs:   names copied back to the host (returned as numpy arrays).
    """

    def __init__(self, session: ort.InferenceSession, device: Device):
        self.session, self.device = session, device
        self.binding = session.io_binding()

    def run(self, device_inputs: dict, host_inputs: dict, device_outputs: list, host_outputs: list,
            into: dict | None = None):
        """into: name -> OrtValue that output `name` is written into (a preallocated buffer)."""
        b = self.binding
        keep = []   # host arrays must outlive the run: the binding may point at their memory
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        for name, value in device_inputs.items():
            b.bind_ortvalue_input(name, value)
        for name, value in host_inputs.items():
            value = to_device(value, self.device)
            keep.append(value)
            b.bind_ortvalue_input(name, value)
        for name in device_outputs:
            b.bind_output(name, self.device.kind, self.device.index)
        for name in host_outputs:
            b.bind_output(name, "cpu")
        for name, value in (into or {}).items():
            b.bind_ortvalue_output(name, value)
        self.session.run_with_iobinding(b)
        values = b.get_outputs()[:len(device_outputs) + len(host_outputs)]
        names = list(device_outputs) + list(host_outputs)
        on_device = {n: v for n, v in zip(names[:len(device_outputs)], values)}
        on_host = {n: v.numpy() for n, v in zip(names[len(device_outputs):], values[len(device_outputs):])}
        return on_device, on_host


class StepRunner:
    """Runs a training graph step after step with its IOBinding bound once.

    The carried tensors live in two buffer sets on the device, A and B: one
    binding reads A and writes B, the other reads B and writes A, and they
    alternate, so a step binds only the inputs that change (the batch, the
    step's scalars) instead of every carried name. `carried` (input name ->
    OrtValue) is always the set holding the latest values; `previous` is the
    set the last step read (still intact until the next step writes it).

    pairs:        (input name, output name) of each carried tensor;
    values:       input name -> initial value (array or OrtValue);
    host_outputs: names copied back to the host each step (losses, metrics).
    """

    def __init__(self, session: ort.InferenceSession, device: Device, pairs: list[tuple[str, str]],
                 values: dict, host_outputs: list[str]):
        self.session, self.device = session, device
        self.pairs = list(pairs)
        self.host_outputs = list(host_outputs)
        self.sets = [{}, {}]
        self.bindings = []
        self.load(values)

    def _buffer(self, like) -> ort.OrtValue:
        # a copy each: a CPU OrtValue wraps the array's memory, and the two sets must not share it
        arr = like.numpy() if isinstance(like, ort.OrtValue) else like
        return to_device(np.array(arr, copy=True), self.device)

    def load(self, values: dict) -> None:
        """New values for every carried tensor (reset, checkpoint, best epoch): fresh buffers, bound once."""
        self.sets = [{i: self._buffer(values[i]) for i, _ in self.pairs},
                     {i: self._buffer(values[i]) for i, _ in self.pairs}]
        self.bindings = []
        # scalar host outputs (losses, metrics) go to fixed CPU buffers read after each run;
        # others are allocated by ORT per run (get_outputs)
        types = {o.name: o for o in self.session.get_outputs()}
        np_type = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                   "tensor(bool)": np.bool_}
        self.fixed = {}
        for name in self.host_outputs:
            o = types[name]
            if o.shape == [] and o.type in np_type:
                self.fixed[name] = ort.OrtValue.ortvalue_from_numpy(np.zeros((), np_type[o.type]))
        for src in (0, 1):
            b = self.session.io_binding()
            for i, o in self.pairs:
                b.bind_ortvalue_input(i, self.sets[src][i])
                b.bind_ortvalue_output(o, self.sets[1 - src][i])
            for name in self.host_outputs:
                if name in self.fixed:
                    b.bind_ortvalue_output(name, self.fixed[name])
                else:
                    b.bind_output(name, "cpu")
            self.bindings.append(b)
        self.bound = [{}, {}]           # per binding: scalar inputs bound last time (kept when unchanged)
        self.k = 0                      # the set holding the current values

    @property
    def carried(self) -> dict:
        return self.sets[self.k]

    @property
    def previous(self) -> dict:
        return self.sets[1 - self.k]

    def run(self, host_inputs: dict) -> dict:
        """One step: host_inputs (name -> array) copied in; returns the host outputs
        as arrays. The carried sets swap: `carried` now holds the new values."""
        b, bound = self.bindings[self.k], self.bound[self.k]
        keep = []   # the device copies must outlive the run
        for name, value in host_inputs.items():
            value = np.asarray(value)
            if value.ndim == 0:             # step scalars (lr, seed, select) rarely change
                key = (value.dtype.str, value.tobytes())
                if bound.get(name, (None,))[0] == key:
                    continue
            if value.ndim > 0 and self.device.kind == "cpu":
                # the batch binds straight from host memory (no OrtValue built in Python: ~5 us less per array)
                value = np.asarray(value, order="C")
                keep.append(value)
                b.bind_cpu_input(name, value)
                continue
            v = to_device(value, self.device)
            if value.ndim == 0:
                bound[name] = (key, v)      # the binding points at v: keep it alive
            else:
                keep.append(v)
            b.bind_ortvalue_input(name, v)
        self.session.run_with_iobinding(b)
        host = {name: np.array(v.numpy(), copy=True) for name, v in self.fixed.items()}
        if len(host) < len(self.host_outputs):
            outs = b.get_outputs()
            n = len(self.pairs)
            host.update({name: np.array(outs[n + j].numpy(), copy=True)
                         for j, name in enumerate(self.host_outputs) if name not in self.fixed})
        self.k = 1 - self.k
        return host
