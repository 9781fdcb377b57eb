#!/usr/bin/python3
"""Float64 reference trajectories of Muon for fusedopt's agreement tests (issue 30, items 3 and 5).

Debian's torch 1.13 has no Muon, so this is a NumPy float64 transcription of PyTorch's
torch/optim/_muon.py (`_single_tensor_muon`, `_zeropower_via_newtonschulz`, `_adjust_lr`), read at
pytorch/pytorch@098e03f91de9384cc3afdf5c8b9a6bbc442bd66a (2.9 or newer: it has `use_addmm`).
It follows the code where the docstring differs (docs/muon.md): the momentum buffer is an
exponential average (`buf.lerp_(grad, 1 - momentum)`), Nesterov is `grad.lerp(buf, momentum)`,
eps is a floor on the Frobenius norm, weight decay is decoupled and uses the unadjusted lr.
The one deliberate difference: PyTorch runs Newton-Schulz in bfloat16; this reference runs it in
float64 (fusedopt's exact mode is float32, its fast mode bf16 inputs with fp32 accumulation; both
are held against this within their tolerances).

Writes src/test/resources/io/fusedopt/muon-reference/muon.json:
* "newton_schulz": for a few matrices (float32 inputs), the float64 result of
  `_zeropower_via_newtonschulz` with the default coefficients, eps and steps;
* "cases": per hyper-parameter set and tensor shape, the float32 initial parameter, for each step
  the float32 gradient fed and the float64 parameter and momentum buffer after the step.

Floats are stored exactly, as the hexadecimal digits of their IEEE-754 bits: 8 digits for a
float32, 16 for a float64; matrices row-major. Seeded: a second run writes identical files.

Regenerate: /usr/bin/python3 src/test/python/muon_reference.py
"""
import json
import math
import os
import re
import struct

import numpy as np

SOURCE = "pytorch/pytorch torch/optim/_muon.py @098e03f91de9384cc3afdf5c8b9a6bbc442bd66a"
DEFAULT_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
DEFAULT_EPS = 1e-7
DEFAULT_NS_STEPS = 5
STEPS = 6
SHAPES = [(3, 5), (8, 4), (16, 16)]

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "..", "resources", "io", "fusedopt", "muon-reference", "muon.json")


def f32_hex(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def f64_hex(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def hex_matrix(matrix, precision):
    encode = f32_hex if precision == "float32" else f64_hex
    return [encode(v) for v in np.asarray(matrix).reshape(-1)]


def torch_lerp(start, end, weight):
    """torch.lerp's CPU formula (ATen Lerp.h): two forms, chosen by |weight| < 0.5."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def newton_schulz(update, coefficients=DEFAULT_COEFFICIENTS, steps=DEFAULT_NS_STEPS, eps=DEFAULT_EPS):
    """_zeropower_via_newtonschulz (use_addmm=False), in float64 instead of bfloat16."""
    if steps >= 100:
        raise ValueError("ns_steps must be below 100")
    if update.ndim != 2:
        raise ValueError("Newton-Schulz takes a 2-D matrix")
    a, b, c = coefficients
    x = np.array(update, dtype=np.float64)
    transposed = update.shape[0] > update.shape[1]
    if transposed:
        x = x.T
    x = x / max(math.sqrt(float(np.sum(x * x))), eps)
    for _ in range(steps):
        gram = x @ x.T
        gram_update = b * gram + c * (gram @ gram)
        x = a * x + gram_update @ x
    return x.T if transposed else x


def adjusted_lr(lr, adjust_lr_fn, shape):
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * (0.2 * math.sqrt(max(rows, cols)))
    raise ValueError("adjust_lr_fn %r is not supported" % adjust_lr_fn)


def muon_step(param, grad, buf, hp):
    """_single_tensor_muon for one tensor; returns the new (param, buf)."""
    momentum = hp["momentum"]
    buf = torch_lerp(buf, grad, 1.0 - momentum)
    update = torch_lerp(grad, buf, momentum) if hp["nesterov"] else buf
    update = newton_schulz(update, tuple(hp["ns_coefficients"]), hp["ns_steps"], hp["eps"])
    lr = hp["lr"]
    param = param * (1.0 - lr * hp["weight_decay"])
    param = param - adjusted_lr(lr, hp.get("adjust_lr_fn"), param.shape) * update
    return param, buf


def float32_matrix(rng, shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


HYPER_PARAMETER_SETS = [
    ("defaults", dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                      ns_coefficients=list(DEFAULT_COEFFICIENTS), eps=DEFAULT_EPS,
                      ns_steps=DEFAULT_NS_STEPS)),  # adjust_lr_fn unset: "original"
    ("plain_momentum_match_rms_adamw", dict(lr=0.02, weight_decay=0.01, momentum=0.9, nesterov=False,
                                            ns_coefficients=list(DEFAULT_COEFFICIENTS), eps=DEFAULT_EPS,
                                            ns_steps=DEFAULT_NS_STEPS, adjust_lr_fn="match_rms_adamw")),
    ("original_three_steps_no_decay", dict(lr=0.05, weight_decay=0.0, momentum=0.5, nesterov=True,
                                           ns_coefficients=list(DEFAULT_COEFFICIENTS), eps=DEFAULT_EPS,
                                           ns_steps=3, adjust_lr_fn="original")),
]


def main():
    rng = np.random.default_rng(30)
    newton_schulz_cases = []
    for rows, cols in SHAPES + [(1, 6), (6, 1)]:
        matrix = float32_matrix(rng, (rows, cols), 0.5)
        newton_schulz_cases.append({
            "rows": rows, "cols": cols,
            "input": hex_matrix(matrix, "float32"),
            "output": hex_matrix(newton_schulz(matrix.astype(np.float64)), "float64"),
        })
    # A zero matrix: the norm is clamped at eps, the result is zero.
    zero = np.zeros((2, 3), dtype=np.float32)
    newton_schulz_cases.append({"rows": 2, "cols": 3, "input": hex_matrix(zero, "float32"),
                                "output": hex_matrix(newton_schulz(zero.astype(np.float64)), "float64")})

    cases = []
    for name, hp in HYPER_PARAMETER_SETS:
        for rows, cols in SHAPES:
            initial = float32_matrix(rng, (rows, cols), 0.3)
            param = initial.astype(np.float64)
            buf = np.zeros((rows, cols), dtype=np.float64)
            steps = []
            for _ in range(STEPS):
                grad = float32_matrix(rng, (rows, cols), 0.1)
                param, buf = muon_step(param, grad.astype(np.float64), buf, hp)
                steps.append({"grad": hex_matrix(grad, "float32"),
                              "param": hex_matrix(param, "float64"),
                              "momentum_buffer": hex_matrix(buf, "float64")})
            cases.append({"name": "%s_%dx%d" % (name, rows, cols), "torch": hp,
                          "rows": rows, "cols": cols,
                          "initial": hex_matrix(initial, "float32"), "steps": steps})

    document = {
        "format": "fusedopt muon-reference 1",
        "generator": "src/test/python/muon_reference.py",
        "source": SOURCE,
        "precision": "float64 (PyTorch runs Newton-Schulz in bfloat16)",
        "encoding": "floats are the hex digits of their IEEE-754 bits: 8 for float32, 16 for float64; "
                    "matrices row-major",
        "newton_schulz": {"ns_coefficients": list(DEFAULT_COEFFICIENTS), "eps": DEFAULT_EPS,
                          "ns_steps": DEFAULT_NS_STEPS, "cases": newton_schulz_cases},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(document, indent=1)
    # One line per matrix: the hex digits of a list need no line of their own.
    text = re.sub(r'\[\n\s*("[0-9a-f]+"(?:,\n\s*"[0-9a-f]+")*)\n\s*\]',
                  lambda match: "[" + re.sub(r",\n\s*", ", ", match.group(1)) + "]", text)
    with open(OUT, "w") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main()
