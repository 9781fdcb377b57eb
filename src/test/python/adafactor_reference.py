#!/usr/bin/python3
"""Float64 reference trajectories of Adafactor for fusedopt (issue 30, items 4 and 5).

Debian's torch 1.13 has no Adafactor (added in torch 2.5), so this is a NumPy float64 transcription
of torch.optim.Adafactor's single-tensor loop: pytorch/pytorch torch/optim/_adafactor.py,
`_single_tensor_adafactor`, read at pytorch/pytorch@051d6a09bb159a48ac11006c454c0c979511d0f3.
Every line of `adafactor_step` names the line of that function it transcribes. The formula, and the
choices fusedopt makes around it, are in docs/algorithms.md ("Adafactor") on this branch.

Writes src/test/resources/io/fusedopt/adafactor-reference/adafactor.json: for every case the
hyper-parameters (torch's keyword arguments, and fusedopt's Adafactor builder values), and for each tensor its shape, its initial float32 values, for
each step the float32 gradient fed and the float64 parameters after the step, and the final state
(row_var and col_var for a tensor of rank >= 2, variance for a vector; float64, flattened
row-major in torch's keepdim shapes [..., R, 1] and [..., 1, C]). The gradient of a step is a
deterministic function of the reference's parameters before that step (a noisy quadratic), rounded
to float32 once; a test feeds the stored gradients, it does not recompute them.

Floats are the hex digits of their IEEE-754 bits (8 for float32, 16 for float64), as in
torch_reference.py. Seeded: a second run writes an identical file. Needs NumPy only:

    /usr/bin/python3 src/test/python/adafactor_reference.py
"""
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

STEPS = 8
FLOAT32_EPS = 2.0 ** -23  # torch.finfo(torch.float32).eps: eps1=None for the float32 tensors fusedopt updates
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "resources", "io", "fusedopt",
                   "adafactor-reference", "adafactor.json")
FORMAT = "fusedopt adafactor-reference 1"
SOURCE = ("pytorch/pytorch torch/optim/_adafactor.py _single_tensor_adafactor at "
          "051d6a09bb159a48ac11006c454c0c979511d0f3")


def f32_hex(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def f64_hex(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def hex_list(values, encode):
    return [encode(v) for v in np.asarray(values, np.float64).reshape(-1).tolist()]


# ---------------------------------------------------------------------------------------------
# The transcription. `param` is float64 and updated in place; `state` holds step, row_var/col_var
# (rank >= 2) or variance (rank 1), as torch's _init_group creates them.


def init_state(shape):
    if len(shape) > 1:
        return {"step": 0,
                "row_var": np.zeros(shape[:-1] + (1,)),           # row_shape[-1] = 1
                "col_var": np.zeros(shape[:-2] + (1, shape[-1]))}  # col_shape[-2] = 1
    return {"step": 0, "variance": np.zeros(shape)}


def adafactor_step(hp, param, grad_in, state):
    """One step of _single_tensor_adafactor for one tensor, in float64."""
    lr, beta2_decay, d, weight_decay = hp["lr"], hp["beta2_decay"], hp["d"], hp["weight_decay"]
    eps1, eps2 = hp["eps"]
    grad = -grad_in if hp["maximize"] else grad_in             # grad = grads[i] if not maximize else -grads[i]
    if eps1 is None:
        eps1 = FLOAT32_EPS                                      # eps1 = torch.finfo(param.dtype).eps
    state["step"] += 1                                          # step_t += 1
    step_float = float(state["step"])
    one_minus_beta2_t = step_float ** beta2_decay               # the lerp weight
    rho_t = min(lr, 1 / (step_float ** 0.5))
    # RMS(p) of the parameter BEFORE weight decay (computed first in torch's loop)
    alpha = max(eps2, np.sqrt(np.sum(param * param)) / (param.size ** 0.5)) * rho_t
    if weight_decay != 0:
        param *= 1 - lr * weight_decay                          # param.mul_(1 - lr * weight_decay)
    if grad.ndim > 1:
        row_mean = np.sum(grad * grad, axis=-1, keepdims=True) / grad.shape[-1]  # vector_norm(dim=-1)^2 / C
        state["row_var"] += (row_mean - state["row_var"]) * one_minus_beta2_t    # row_var.lerp_(row_mean, w)
        col_mean = np.sum(grad * grad, axis=-2, keepdims=True) / grad.shape[-2]  # vector_norm(dim=-2)^2 / R
        state["col_var"] += (col_mean - state["col_var"]) * one_minus_beta2_t    # col_var.lerp_(col_mean, w)
        var_estimate = state["row_var"] @ state["col_var"]                       # [..,R,1] @ [..,1,C]: r_i * c_j
        # divided by the mean of the row factors of the same matrix, clamped at eps1 (not eps1^2)
        var_estimate = var_estimate / np.maximum(np.mean(state["row_var"], axis=-2, keepdims=True), eps1)
    else:
        state["variance"] += (grad * grad - state["variance"]) * one_minus_beta2_t
        var_estimate = state["variance"].copy()
    update = 1 / np.sqrt(np.maximum(var_estimate, eps1 * eps1)) * grad   # clamp_(min=eps1^2).rsqrt_().mul_(grad)
    # RMS over the whole tensor (all leading dims too), against d
    denom = max(1.0, np.sqrt(np.sum(update * update)) / ((update.size ** 0.5) * d))
    param += (-alpha / denom) * update                          # param.add_(update, alpha=-alpha / denom)


# ---------------------------------------------------------------------------------------------
# The problems


class TensorProblem:
    def __init__(self, name, shape, rng, zero_init=False, zero_row=False):
        self.name = name
        self.shape = tuple(shape)
        self.initial = (np.zeros(self.shape) if zero_init else rng.normal(0.0, 1.0, self.shape)).astype(np.float32)
        self.target = rng.normal(0.0, 1.0, self.shape)
        self.curvature = 10.0 ** rng.uniform(-1.0, 0.5, self.shape)
        self.noise = rng.normal(0.0, 0.3, (STEPS,) + self.shape)
        # spread of magnitudes so that the factored estimate differs from g^2 and eps1 matters somewhere
        self.magnitude = rng.choice([1.0, 1e-2, 1e-5], self.shape, p=[0.8, 0.1, 0.1])
        self.zero_mask = rng.uniform(0.0, 1.0, (STEPS,) + self.shape) < 0.08
        self.zero_row = zero_row

    def grad(self, step, param):
        g = self.magnitude * (self.curvature * (param - self.target) + self.noise[step - 1])
        g[self.zero_mask[step - 1]] = 0.0
        if self.zero_row:  # a whole row of zeros: its row factor decays to 0, V is clamped at eps1^2
            if g.ndim > 1:
                g[..., 0, :] = 0.0
            else:
                g[0] = 0.0
        return g.astype(np.float32)


SHAPES = [("vector", (7,)), ("matrix3x5", (3, 5)), ("matrix8x4", (8, 4)), ("tensor2x3x4", (2, 3, 4))]


def hp(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, maximize=False):
    return {"lr": lr, "beta2_decay": beta2_decay, "eps": list(eps), "d": d, "weight_decay": weight_decay,
            "maximize": maximize}


CASES = [
    # name, hyper-parameters, problem options, why
    ("defaults", hp(), {}, "torch's defaults: rho_t = lr for t <= 1e4"),
    ("large_lr_weight_decay_maximize", hp(lr=0.5, weight_decay=0.1, maximize=True, d=1.5), {},
     "rho_t = min(0.5, 1/sqrt(t)) switches at t = 5; decoupled decay with lr; negated gradient; d > 1"),
    ("zero_init_eps", hp(lr=0.05, beta2_decay=-0.5, eps=(1e-6, 1e-2)), {"zero_init": True, "zero_row": True},
     "RMS(p) = 0 at t = 1 (alpha = eps2 * rho_t); explicit eps1; a zero gradient row"),
]


def torch_arguments(hyper):
    """torch.optim.Adafactor's keyword arguments as Python writes them (eps may hold None)."""
    return {k: repr(tuple(v)) if k == "eps" else v for k, v in hyper.items()}


def fusedopt_values(hyper):
    """The values fusedopt's Adafactor builder takes: numbers only, eps1 None as the float32 epsilon."""
    eps1, eps2 = hyper["eps"]
    return {"learningRate": hyper["lr"], "beta2Decay": hyper["beta2_decay"],
            "eps1": FLOAT32_EPS if eps1 is None else eps1, "eps2": eps2, "d": hyper["d"],
            "weightDecay": hyper["weight_decay"], "maximize": hyper["maximize"]}


def run_case(name, hyper, options):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    tensors = []
    for tname, shape in SHAPES:
        problem = TensorProblem(tname, shape, rng, **options)
        param = problem.initial.astype(np.float64)
        state = init_state(problem.shape)
        grads, params = [], []
        for step in range(1, STEPS + 1):
            g = problem.grad(step, param)
            adafactor_step(hyper, param, g.astype(np.float64), state)
            grads.append(hex_list(g, f32_hex))
            params.append(hex_list(param, f64_hex))
        final_state = {k: {"shape": list(v.shape), "values": hex_list(v, f64_hex)}
                       for k, v in sorted(state.items()) if k != "step"}
        tensors.append({"name": tname, "shape": list(shape), "initial": hex_list(problem.initial, f32_hex),
                        "grads": grads, "params": params, "final_state": final_state,
                        "final_step": state["step"]})
    return tensors


def dumps(value, indent=0):
    """JSON with one line per array of scalars, indented structure otherwise."""
    pad = " " * indent
    if isinstance(value, dict):
        items = ["%s %s: %s" % (pad, json.dumps(k), dumps(v, indent + 1)) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}" if items else "{}"
    if isinstance(value, list) and value and isinstance(value[0], (list, dict)):
        items = ["%s %s" % (pad, dumps(v, indent + 1)) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, separators=(", ", ": "))


def main():
    cases = [{"name": n, "why": why, "torch": torch_arguments(h), "fusedopt": fusedopt_values(h),
              "tensors": run_case(n, h, o)} for n, h, o, why in CASES]
    document = {
        "format": FORMAT,
        "algorithm": "adafactor",
        "generator": "src/test/python/adafactor_reference.py",
        "reference": "float64 NumPy transcription of " + SOURCE,
        "eps1_none": "torch's eps[0] = None is torch.finfo(float32).eps = 2^-23 (fusedopt.eps1)",
        "encoding": "floats are the hex digits of their IEEE-754 bits: 8 for float32, 16 for float64; "
                    "arrays flattened row-major",
        "steps": STEPS,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(dumps(document) + "\n")
    print("adafactor: %d cases -> %s" % (len(cases), os.path.relpath(OUT)))


if __name__ == "__main__":
    sys.exit(main())
