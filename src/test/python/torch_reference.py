#!/usr/bin/python3
"""Reference trajectories for fusedopt's agreement tests (issue 28, section 3).

Writes src/test/resources/io/fusedopt/torch-reference/<algorithm>.json: for every case the
hyper-parameters (in torch's names and in fusedopt's builder names), the initial parameters, for
each of 24 steps the gradient fed and the parameters after the step, and the final state. After
step 12 each group's learning rate is set to a new value the way a user does it
(param_group["lr"] = new), and fusedopt's test does the same with ParamGroup.setLearningRate.

Two kinds of reference:

* float32: torch.optim of the installed torch (Debian's python3-torch 1.13, CPU), float32 tensors,
  foreach=False (the single-tensor loop, torch's readable reference), except NAdam (see below).
* float64: a NumPy float64 transcription of a cited source, for what torch 1.13 lacks:
  - NAdam's and RAdam's decoupled_weight_decay (and their maximize), added after 1.13. Source:
    pytorch/pytorch torch/optim/nadam.py `_single_tensor_nadam` and torch/optim/radam.py
    `_single_tensor_radam` of v2.1 and later (read at pytorch/pytorch@008ec6b1 for radam.py and at
    the fork cyyever/pytorch@a9e0fe66, which tracks pytorch main, for nadam.py).
  - Lion: google/automl lion/lion_pytorch.py `Lion.step` (Chen et al. 2023, "Symbolic Discovery
    of Optimization Algorithms"), the authors' PyTorch code.
  - AdEMAMix: bitsandbytes-foundation/bitsandbytes bitsandbytes/optim/ademamix.py
    `_ReferenceAdEMAMix.step` and `AdEMAMix.update_step`, csrc/kernels.cu
    `kOptimizer32bit2State` (case ADEMAMIX) (Pagliardini et al. 2024), at bitsandbytes@95f9af30.
  - LAMB: NVIDIA/apex apex/optimizers/fused_lamb.py `FusedLAMB.step` and
    csrc/multi_tensor_lamb.cu `LAMBStage1Functor`, `LAMBStage2Functor`, `multi_tensor_lamb_cuda`
    (You et al. 2019), at apex@6424da3b.
  - LARS: Lightning-Universe/lightning-bolts pl_bolts/optimizers/lars.py `LARS.step` (You et al.
    2017, as SimCLR and BYOL use it), with one documented change (README.md, "LARS").
  The formulas, and every choice made where sources differ, are in README.md beside the data.

NAdam from torch 1.13 runs with foreach=True: 1.13's single-tensor loop computes
mu_product_next = mu_product * mu * mu_next (mu counted twice; fixed in torch 2.0, which uses
mu_product * mu_next as 1.13's own foreach path does and as the documented formula says).

Floats are stored exactly, as the hexadecimal digits of their IEEE-754 bits: 8 digits for a
float32, 16 for a float64. Hyper-parameters are JSON numbers (the shortest decimal that reads
back as the same double). Everything is seeded; a second run writes identical files.

Regenerate: apt-get install -y python3-torch; /usr/bin/python3 src/test/python/torch_reference.py
"""

import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch

STEPS = 24
LR_CHANGE_AFTER_STEP = 12
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "resources", "io", "fusedopt",
                       "torch-reference")
FORMAT = "fusedopt torch-reference 1"


# ---------------------------------------------------------------------------------------------
# Exact float encoding


def f32_hex(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def f64_hex(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def hex_array(values, precision):
    encode = f32_hex if precision == "float32" else f64_hex
    return [encode(v) for v in np.asarray(values).reshape(-1).tolist()]


def require_float32(values):
    a = np.asarray(values, dtype=np.float64)
    assert np.array_equal(a, a.astype(np.float32).astype(np.float64)), "not float32-representable"
    return a


# ---------------------------------------------------------------------------------------------
# The problems: deterministic gradients that depend on the parameters (a noisy quadratic per
# element), with a spread of magnitudes (so that eps matters for some elements), exact zeros, and,
# where a case asks for it, a step whose whole gradient is zero (the trust-ratio corner of LAMB
# and LARS).


class TensorProblem:
    def __init__(self, name, size, rng, zero_init=False, zero_grad_steps=()):
        self.name = name
        self.size = size
        self.initial = np.zeros(size, np.float32) if zero_init else rng.normal(0.0, 1.0, size).astype(np.float32)
        self.target = rng.normal(0.0, 1.0, size)
        self.curvature = 10.0 ** rng.uniform(-1.0, 0.5, size)
        self.noise_scale = 10.0 ** rng.uniform(-2.0, 0.0, size)
        # 80% of elements at scale 1, 10% at 1e-3, 10% at 1e-6 (near Adam's eps).
        self.magnitude = rng.choice([1.0, 1e-3, 1e-6], size, p=[0.8, 0.1, 0.1])
        self.noise = rng.normal(0.0, 1.0, (STEPS, size))
        self.zero_mask = rng.uniform(0.0, 1.0, (STEPS, size)) < 0.08
        self.zero_grad_steps = set(zero_grad_steps)

    def grad(self, step, param):
        """The float32 gradient fed at step (1-based) for the current parameters."""
        if step in self.zero_grad_steps:
            return np.zeros(self.size, np.float32)
        p = np.asarray(param, np.float64)
        g = self.magnitude * (self.curvature * (p - self.target) + self.noise_scale * self.noise[step - 1])
        g[self.zero_mask[step - 1]] = 0.0
        return g.astype(np.float32)


def make_problems(case_name, layout):
    """layout: list of groups, each a list of (name, size, options)."""
    rng = np.random.default_rng(zlib.crc32(case_name.encode("utf-8")))
    return [[TensorProblem(name, size, rng, **options) for name, size, options in group] for group in layout]


TWO_TENSORS = [[("w37", 37, {}), ("b7", 7, {})]]


# ---------------------------------------------------------------------------------------------
# Cases


class Group:
    def __init__(self, torch_hp, fusedopt, new_lr):
        self.torch_hp = torch_hp
        self.fusedopt = fusedopt
        self.new_lr = new_lr


class Case:
    def __init__(self, name, algorithm, groups, layout=None, reference="torch", torch_class=None, notes=None,
                 torch_lr_lag=0):
        self.name = name
        # Steps by which torch's use of a new lr lags fusedopt's: torch gets the new lr that many
        # steps earlier, so that both compute the same formula (ASGD: torch computes eta and mu at
        # the end of the previous step; fusedopt from the step's own lr).
        self.torch_lr_lag = torch_lr_lag
        self.algorithm = algorithm
        self.groups = groups
        self.layout = layout or TWO_TENSORS
        self.reference = reference  # "torch" (float32) or the name of a float64 implementation below
        self.torch_class = torch_class
        self.notes = notes
        assert len(self.layout) == len(self.groups)

    @property
    def precision(self):
        return "float32" if self.reference == "torch" else "float64"


def fo(builder, **methods):
    """fusedopt's builder: the factory ("Adam.adamW") and method name -> argument list."""
    out = {"builder": builder}
    for name, args in methods.items():
        out[name] = list(args) if isinstance(args, (list, tuple)) else [args]
    return out


def single(torch_hp, fusedopt, new_lr):
    return [Group(torch_hp, fusedopt, new_lr)]


def sgd_cases():
    cases = []

    def add(name, lr, new_lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
        hp = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                  maximize=maximize, foreach=False)
        if momentum == 0.0:
            f = fo("Sgd.builder", optLearningRate=lr, optWeightDecay=weight_decay, optMaximize=maximize)
        else:
            f = fo("Momentum.builder", optLearningRate=lr, setMomentum=momentum, optDampening=dampening,
                   optWeightDecay=weight_decay, optNesterov=nesterov, optMaximize=maximize)
        cases.append(Case(name, "sgd", single(hp, f, new_lr), torch_class=torch.optim.SGD))

    add("sgd", 0.05, 0.02)
    add("sgd_weight_decay_maximize", 0.05, 0.02, weight_decay=0.01, maximize=True)
    add("sgd_momentum", 0.03, 0.01, momentum=0.9)
    add("sgd_momentum_dampening_weight_decay", 0.03, 0.01, momentum=0.9, dampening=0.3, weight_decay=1e-3)
    add("sgd_nesterov", 0.03, 0.01, momentum=0.9, nesterov=True, weight_decay=1e-3)
    add("sgd_nesterov_maximize", 0.03, 0.01, momentum=0.8, nesterov=True, maximize=True)
    return cases


def adam_cases(algorithm):
    cases = []
    decoupled = algorithm == "adamw"
    torch_class = torch.optim.AdamW if decoupled else torch.optim.Adam

    def add(name, lr, new_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False):
        hp = dict(lr=lr, betas=list(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                  foreach=False)
        f = fo("Adam.adamW" if decoupled else "Adam.builder", optLearningRate=lr, optBetas=list(betas),
               optEpsilon=eps, optWeightDecay=weight_decay, optAmsgrad=amsgrad, optMaximize=maximize)
        cases.append(Case(name, algorithm, single(hp, f, new_lr), torch_class=torch_class))

    if decoupled:
        add("adamw", 0.01, 0.004, weight_decay=0.01)
        add("adamw_amsgrad", 0.01, 0.004, weight_decay=0.05, amsgrad=True)
        add("adamw_maximize", 0.01, 0.004, betas=(0.85, 0.995), weight_decay=0.01, maximize=True)
        add("adamw_amsgrad_maximize_eps", 0.02, 0.005, eps=1e-6, weight_decay=0.1, amsgrad=True, maximize=True)
    else:
        add("adam", 0.01, 0.004)
        add("adam_weight_decay", 0.01, 0.004, weight_decay=0.01)
        add("adam_amsgrad", 0.01, 0.004, betas=(0.8, 0.99), amsgrad=True)
        add("adam_maximize_weight_decay", 0.01, 0.004, weight_decay=0.02, maximize=True)
        add("adam_eps", 0.02, 0.005, eps=1e-6, amsgrad=True, weight_decay=1e-3)
    return cases


def rmsprop_cases():
    cases = []

    def add(name, lr, new_lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
        hp = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                  maximize=maximize, foreach=False)
        f = fo("RmsProp.builder", optLearningRate=lr, optAlpha=alpha, optEpsilon=eps, optWeightDecay=weight_decay,
               optMomentum=momentum, optCentered=centered, optMaximize=maximize)
        cases.append(Case(name, "rmsprop", single(hp, f, new_lr), torch_class=torch.optim.RMSprop))

    add("rmsprop", 0.01, 0.003)
    add("rmsprop_centered", 0.01, 0.003, alpha=0.9)
    add("rmsprop_momentum", 0.005, 0.002, momentum=0.9)
    add("rmsprop_centered_momentum_weight_decay", 0.005, 0.002, alpha=0.95, momentum=0.8, centered=True,
        weight_decay=0.01)
    add("rmsprop_maximize_weight_decay", 0.01, 0.003, alpha=0.9, weight_decay=0.01, maximize=True)
    return cases


def adagrad_cases():
    cases = []

    def add(name, lr, new_lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
            maximize=False):
        hp = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                  initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize, foreach=False)
        f = fo("Adagrad.builder", optLearningRate=lr, optLrDecay=lr_decay, optWeightDecay=weight_decay,
               optInitialAccumulatorValue=initial_accumulator_value, optEpsilon=eps, optMaximize=maximize)
        cases.append(Case(name, "adagrad", single(hp, f, new_lr), torch_class=torch.optim.Adagrad))

    add("adagrad", 0.05, 0.02)
    add("adagrad_lr_decay", 0.05, 0.02, lr_decay=0.05)
    add("adagrad_initial_accumulator_weight_decay", 0.05, 0.02, initial_accumulator_value=0.1, weight_decay=0.01)
    add("adagrad_maximize_lr_decay_eps", 0.05, 0.02, lr_decay=0.01, eps=1e-6, maximize=True)
    return cases


def nadam_cases():
    cases = []

    def add(name, lr, new_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
            decoupled_weight_decay=None, maximize=None):
        hp = dict(lr=lr, betas=list(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay)
        f = fo("NAdam.builder", optLearningRate=lr, optBetas=list(betas), optEpsilon=eps,
               optWeightDecay=weight_decay, optMomentumDecay=momentum_decay)
        if decoupled_weight_decay is not None or maximize is not None:
            hp.update(decoupled_weight_decay=bool(decoupled_weight_decay), maximize=bool(maximize))
            f.update(optDecoupledWeightDecay=[bool(decoupled_weight_decay)], optMaximize=[bool(maximize)])
            cases.append(Case(name, "nadam", single(hp, f, new_lr), reference="nadam"))
        else:
            hp["foreach"] = True
            cases.append(Case(name, "nadam", single(hp, f, new_lr), torch_class=torch.optim.NAdam,
                              notes="foreach=True: torch 1.13's single-tensor NAdam counts mu twice in "
                                    "mu_product_next (fixed in torch 2.0)"))

    add("nadam", 0.01, 0.004)
    add("nadam_weight_decay", 0.01, 0.004, weight_decay=0.01)
    add("nadam_betas_momentum_decay", 0.01, 0.004, betas=(0.85, 0.99), momentum_decay=1e-2)
    add("nadamw_float64", 0.01, 0.004, weight_decay=0.05, decoupled_weight_decay=True)
    add("nadamw_maximize_float64", 0.01, 0.004, weight_decay=0.01, decoupled_weight_decay=True, maximize=True)
    add("nadam_maximize_weight_decay_float64", 0.01, 0.004, weight_decay=0.01, decoupled_weight_decay=False,
        maximize=True)
    return cases


def radam_cases():
    cases = []

    def add(name, lr, new_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=None,
            maximize=None):
        hp = dict(lr=lr, betas=list(betas), eps=eps, weight_decay=weight_decay)
        f = fo("RAdam.builder", optLearningRate=lr, optBetas=list(betas), optEpsilon=eps, optWeightDecay=weight_decay)
        if decoupled_weight_decay is not None or maximize is not None:
            hp.update(decoupled_weight_decay=bool(decoupled_weight_decay), maximize=bool(maximize))
            f.update(optDecoupledWeightDecay=[bool(decoupled_weight_decay)], optMaximize=[bool(maximize)])
            cases.append(Case(name, "radam", single(hp, f, new_lr), reference="radam"))
        else:
            hp["foreach"] = False
            cases.append(Case(name, "radam", single(hp, f, new_lr), torch_class=torch.optim.RAdam))

    # With beta2 = 0.999, rho_t <= 5 for steps 1-5 (un-rectified branch), > 5 from step 6 on.
    add("radam", 0.01, 0.004)
    add("radam_weight_decay", 0.01, 0.004, weight_decay=0.01)
    add("radam_betas", 0.01, 0.004, betas=(0.8, 0.99), eps=1e-6)
    add("radamw_float64", 0.01, 0.004, weight_decay=0.05, decoupled_weight_decay=True)
    add("radamw_maximize_float64", 0.01, 0.004, weight_decay=0.01, decoupled_weight_decay=True, maximize=True)
    return cases


def adamax_cases():
    cases = []

    def add(name, lr, new_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
        hp = dict(lr=lr, betas=list(betas), eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=False)
        f = fo("Adamax.builder", optLearningRate=lr, optBetas=list(betas), optEpsilon=eps,
               optWeightDecay=weight_decay, optMaximize=maximize)
        cases.append(Case(name, "adamax", single(hp, f, new_lr), torch_class=torch.optim.Adamax))

    add("adamax", 0.01, 0.004)
    add("adamax_weight_decay", 0.01, 0.004, weight_decay=0.01)
    add("adamax_maximize_betas", 0.01, 0.004, betas=(0.8, 0.99), maximize=True)
    add("adamax_large_eps", 0.01, 0.004, eps=1e-4)
    return cases


def adadelta_cases():
    cases = []

    def add(name, lr, new_lr, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
        hp = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=False)
        f = fo("Adadelta.builder", optLearningRate=lr, optRho=rho, optEpsilon=eps, optWeightDecay=weight_decay,
               optMaximize=maximize)
        cases.append(Case(name, "adadelta", single(hp, f, new_lr), torch_class=torch.optim.Adadelta))

    add("adadelta", 1.0, 0.5)
    add("adadelta_weight_decay", 1.0, 0.5, weight_decay=0.01)
    add("adadelta_maximize_rho", 1.0, 0.5, rho=0.95, maximize=True)
    return cases


def rprop_cases():
    cases = []

    def add(name, lr, new_lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), maximize=False):
        hp = dict(lr=lr, etas=list(etas), step_sizes=list(step_sizes), maximize=maximize, foreach=False)
        f = fo("Rprop.builder", optLearningRate=lr, optEtas=list(etas), optStepSizes=list(step_sizes),
               optMaximize=maximize)
        cases.append(Case(name, "rprop", single(hp, f, new_lr), torch_class=torch.optim.Rprop,
                          notes="torch's lr only seeds state step_size at the first step: the lr change "
                                "after step 12 has no effect"))

    add("rprop", 0.01, 0.004)
    add("rprop_clamped", 0.01, 0.004, etas=(0.3, 1.5), step_sizes=(1e-3, 0.05))
    add("rprop_maximize", 0.01, 0.004, maximize=True)
    return cases


def asgd_cases():
    cases = []

    def add(name, lr, new_lr, lambd=1e-4, alpha=0.75, t0=5.0, weight_decay=0.0, maximize=False):
        hp = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize,
                  foreach=False)
        f = fo("Asgd.builder", optLearningRate=lr, optLambd=lambd, optAlpha=alpha, optT0=t0,
               optWeightDecay=weight_decay, optMaximize=maximize)
        cases.append(Case(name, "asgd", single(hp, f, new_lr), torch_class=torch.optim.ASGD, torch_lr_lag=1,
                          notes="torch computes eta for step t at the end of step t-1 from that step's lr, "
                                "fusedopt from step t's own lr: torch gets the new lr after step 11, so that "
                                "both use it from step 13 on (lr_change.after_step is fusedopt's)"))

    # mu = 1/max(1, t - t0) computed at the end of step t: averaging (mu < 1) from step t0 + 3 on.
    add("asgd", 0.05, 0.02)
    add("asgd_weight_decay", 0.05, 0.02, lambd=1e-3, t0=8.0, weight_decay=0.01)
    add("asgd_maximize", 0.05, 0.02, lambd=0.01, alpha=0.5, t0=3.0, maximize=True)
    return cases


def lion_cases():
    cases = []

    def add(name, lr, new_lr, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        hp = dict(lr=lr, betas=list(betas), weight_decay=weight_decay, maximize=maximize)
        f = fo("Lion.builder", optLearningRate=lr, optBetas=list(betas), optWeightDecay=weight_decay,
               optMaximize=maximize)
        cases.append(Case(name, "lion", single(hp, f, new_lr), reference="lion"))

    add("lion", 1e-3, 3e-4)
    add("lion_weight_decay", 1e-3, 3e-4, weight_decay=0.1)
    add("lion_maximize_betas", 1e-3, 3e-4, betas=(0.95, 0.98), weight_decay=0.01, maximize=True)
    return cases


def ademamix_cases():
    cases = []

    def add(name, lr, new_lr, betas=(0.9, 0.999, 0.9999), alpha=5.0, eps=1e-8, weight_decay=1e-2, t_alpha=None,
            t_beta3=None, maximize=False):
        hp = dict(lr=lr, betas=list(betas), alpha=alpha, eps=eps, weight_decay=weight_decay, maximize=maximize)
        f = fo("AdEMAMix.builder", optLearningRate=lr, optBetas=list(betas), optAlpha=alpha, optEpsilon=eps,
               optWeightDecay=weight_decay, optMaximize=maximize)
        if t_alpha is not None:
            hp["t_alpha"] = t_alpha
            f["optAlphaWarmup"] = [t_alpha]
        if t_beta3 is not None:
            hp["t_beta3"] = t_beta3
            f["optBeta3Warmup"] = [t_beta3]
        cases.append(Case(name, "ademamix", single(hp, f, new_lr), reference="ademamix"))

    add("ademamix", 1e-3, 4e-4)
    add("ademamix_no_weight_decay", 1e-3, 4e-4, weight_decay=0.0)
    add("ademamix_warmups", 1e-3, 4e-4, t_alpha=20, t_beta3=20)
    add("ademamix_warmups_maximize", 2e-3, 5e-4, alpha=8.0, t_alpha=10, t_beta3=30, maximize=True)
    return cases


# LAMB and LARS: group 0 holds a random weight (its whole gradient zero at step 7) and a
# zero-initialized weight (norm 0 at step 1; its gradient zero at step 1 too, so both norms are 0);
# group 1 holds a bias that skips the trust ratio.
LAYERWISE = [[("w37", 37, {"zero_grad_steps": (7,)}), ("z7", 7, {"zero_init": True, "zero_grad_steps": (1,)})],
             [("b7", 7, {})]]


def lamb_cases():
    cases = []
    max_grad_norm = 1e9  # Apex's global clipping: never acts here (the script checks the norm).

    def add(name, lr, new_lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, bias_correction=True,
            adam_w_mode=True, use_nvlamb=False, maximize=False):
        groups = []
        for wd in (weight_decay, 0.0):
            hp = dict(lr=lr, betas=list(betas), eps=eps, weight_decay=wd, bias_correction=bias_correction,
                      adam_w_mode=adam_w_mode, grad_averaging=True, max_grad_norm=max_grad_norm,
                      use_nvlamb=use_nvlamb, maximize=maximize)
            f = fo("Lamb.builder", optLearningRate=lr, optBetas=list(betas), optEpsilon=eps, optWeightDecay=wd,
                   optWeightDecayMode="DECOUPLED" if adam_w_mode else "L2", optBiasCorrection=bias_correction,
                   optTrustRatioWithoutWeightDecay=use_nvlamb, optMaximize=maximize)
            groups.append(Group(hp, f, new_lr))
        cases.append(Case(name, "lamb", groups, layout=LAYERWISE, reference="lamb"))

    add("lamb", 0.01, 0.004)
    add("lamb_l2", 0.01, 0.004, adam_w_mode=False)
    add("lamb_no_bias_correction", 0.01, 0.004, bias_correction=False, weight_decay=0.05)
    add("lamb_nvlamb", 0.01, 0.004, use_nvlamb=True)
    add("lamb_maximize", 0.01, 0.004, betas=(0.85, 0.99), maximize=True)
    return cases


def lars_cases():
    cases = []

    def add(name, lr, new_lr, momentum=0.9, dampening=0.0, weight_decay=1e-3, nesterov=False,
            trust_coefficient=0.02, eps=1e-8, maximize=False):
        groups = []
        for excluded in (False, True):
            wd = 0.0 if excluded else weight_decay
            hp = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov,
                      trust_coefficient=trust_coefficient, eps=eps, exclude_from_layer_adaptation=excluded,
                      maximize=maximize)
            f = fo("Lars.builder", optLearningRate=lr, optMomentum=momentum, optDampening=dampening,
                   optWeightDecay=wd, optNesterov=nesterov, optTrustCoefficient=trust_coefficient, optEpsilon=eps,
                   optSkipTrustRatio=excluded, optMaximize=maximize)
            groups.append(Group(hp, f, new_lr))
        cases.append(Case(name, "lars", groups, layout=LAYERWISE, reference="lars"))

    add("lars", 0.5, 0.2)
    add("lars_nesterov", 0.5, 0.2, nesterov=True)
    add("lars_no_momentum", 0.5, 0.2, momentum=0.0)
    add("lars_dampening_maximize", 0.5, 0.2, dampening=0.1, weight_decay=1e-2, maximize=True)
    return cases


# ---------------------------------------------------------------------------------------------
# float64 references (NumPy). Each function performs one step of one group in place:
# step(hp, tensors, states, grads, group_state) with float64 arrays; hp in torch's names.


def norm(a):
    return math.sqrt(float(np.dot(a, a)))


def nadam_step(hp, params, states, grads, group_state):
    """pytorch/pytorch torch/optim/nadam.py `_single_tensor_nadam` (v2.1+, decoupled_weight_decay)."""
    beta1, beta2 = hp["betas"]
    lr, wd, eps, psi = hp["lr"], hp["weight_decay"], hp["eps"], hp["momentum_decay"]
    for i, p in enumerate(params):
        s = states[i]
        if not s:
            s.update(step=0, mu_product=1.0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        g = -grads[i] if hp["maximize"] else grads[i].copy()
        s["step"] += 1
        t = s["step"]
        bias_correction2 = 1 - beta2 ** t
        if wd != 0:
            if hp["decoupled_weight_decay"]:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (t * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * psi)))
        s["mu_product"] *= mu
        s["exp_avg"] += (1 - beta1) * (g - s["exp_avg"])  # lerp_(grad, 1 - beta1)
        s["exp_avg_sq"] *= beta2
        s["exp_avg_sq"] += (1 - beta2) * g * g
        denom = np.sqrt(s["exp_avg_sq"] / bias_correction2) + eps
        mu_product_next = s["mu_product"] * mu_next
        p += (-lr * (1.0 - mu) / (1.0 - s["mu_product"])) * g / denom
        p += (-lr * mu_next / (1.0 - mu_product_next)) * s["exp_avg"] / denom


def radam_step(hp, params, states, grads, group_state):
    """pytorch/pytorch torch/optim/radam.py `_single_tensor_radam` (v2.1+, decoupled_weight_decay)."""
    beta1, beta2 = hp["betas"]
    lr, wd, eps = hp["lr"], hp["weight_decay"], hp["eps"]
    for i, p in enumerate(params):
        s = states[i]
        if not s:
            s.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        g = -grads[i] if hp["maximize"] else grads[i].copy()
        s["step"] += 1
        t = s["step"]
        if wd != 0:
            if hp["decoupled_weight_decay"]:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        s["exp_avg"] += (1 - beta1) * (g - s["exp_avg"])
        s["exp_avg_sq"] *= beta2
        s["exp_avg_sq"] += (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        corrected = s["exp_avg"] / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * (beta2 ** t) / bias_correction2
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adaptive_lr = math.sqrt(bias_correction2) / (np.sqrt(s["exp_avg_sq"]) + eps)
            p -= corrected * lr * adaptive_lr * rect
        else:
            p -= corrected * lr


# Lion's sign is taken of c = beta1*m + (1 - beta1)*g. A float32 implementation may round a c
# that is tiny compared with its two terms to the other sign; the script refuses such data.
SIGN_MARGIN = 1e-3


def lion_step(hp, params, states, grads, group_state):
    """google/automl lion/lion_pytorch.py `Lion.step` (decoupled weight decay p*(1 - lr*wd))."""
    beta1, beta2 = hp["betas"]
    lr, wd = hp["lr"], hp["weight_decay"]
    for i, p in enumerate(params):
        s = states[i]
        if not s:
            s.update(exp_avg=np.zeros_like(p))
        g = -grads[i] if hp["maximize"] else grads[i]
        p *= 1 - lr * wd
        m = s["exp_avg"]
        c = m * beta1 + g * (1 - beta1)
        scale = np.abs(m * beta1) + np.abs(g * (1 - beta1))
        ambiguous = (c != 0) & (np.abs(c) <= SIGN_MARGIN * scale)
        assert not ambiguous.any(), "Lion: sign of c within rounding of zero; change the case"
        p -= lr * np.sign(c)
        m *= beta2
        m += (1 - beta2) * g


def ademamix_step(hp, params, states, grads, group_state):
    """bitsandbytes AdEMAMix: optim/ademamix.py and kernels.cu kOptimizer32bit2State (ADEMAMIX)."""
    beta1, beta2, beta3_final = hp["betas"]
    lr, wd, eps, alpha_final = hp["lr"], hp["weight_decay"], hp["eps"], hp["alpha"]
    t_alpha, t_beta3 = hp.get("t_alpha"), hp.get("t_beta3")
    for i, p in enumerate(params):
        s = states[i]
        if not s:
            s.update(step=0, m1=np.zeros_like(p), m2=np.zeros_like(p), nu=np.zeros_like(p))
        g = -grads[i] if hp["maximize"] else grads[i]
        s["step"] += 1
        t = s["step"]
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        alpha = min(t * alpha_final / t_alpha, alpha_final) if t_alpha else alpha_final
        if t_beta3:
            ln_beta1, ln_beta3 = math.log(beta1), math.log(beta3_final)
            scale = t / t_beta3
            beta3 = min(math.exp((ln_beta1 * ln_beta3) / ((1 - scale) * ln_beta3 + scale * ln_beta1)), beta3_final)
        else:
            beta3 = beta3_final
        s["m1"] *= beta1
        s["m1"] += (1 - beta1) * g
        s["m2"] *= beta3
        s["m2"] += (1 - beta3) * g
        s["nu"] *= beta2
        s["nu"] += (1 - beta2) * g * g
        denom = np.sqrt(s["nu"]) / math.sqrt(bias_correction2) + eps
        update = (s["m1"] / bias_correction1 + alpha * s["m2"]) / denom
        update += wd * p  # decoupled, from the parameter before this step (AdamW's order)
        p -= lr * update


def lamb_step(hp, params, states, grads, group_state):
    """NVIDIA/apex FusedLAMB (fused_lamb.py, multi_tensor_lamb.cu), one group."""
    beta1, beta2 = hp["betas"]
    lr, wd, eps = hp["lr"], hp["weight_decay"], hp["eps"]
    group_state["step"] = group_state.get("step", 0) + 1
    t = group_state["step"]
    if hp["bias_correction"]:
        bias_correction1, bias_correction2 = 1 - beta1 ** t, 1 - beta2 ** t
    else:
        bias_correction1 = bias_correction2 = 1.0
    beta3 = 1 - beta1 if hp["grad_averaging"] else 1.0
    global_norm = group_state["global_grad_norm"]
    assert global_norm <= hp["max_grad_norm"], "LAMB: the global clipping would act"
    clip = global_norm / hp["max_grad_norm"] if global_norm > hp["max_grad_norm"] else 1.0
    adapt = hp["use_nvlamb"] or wd != 0
    for i, p in enumerate(params):
        s = states[i]
        if not s:
            s.update(exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        g = (-grads[i] if hp["maximize"] else grads[i]) / clip
        param_norm = norm(p)  # before the step
        if not hp["adam_w_mode"]:
            g = g + wd * p
        s["exp_avg"] *= beta1
        s["exp_avg"] += beta3 * g
        s["exp_avg_sq"] *= beta2
        s["exp_avg_sq"] += (1 - beta2) * g * g
        update = (s["exp_avg"] / bias_correction1) / (np.sqrt(s["exp_avg_sq"] / bias_correction2) + eps)
        if hp["adam_w_mode"]:
            update = update + wd * p
        update_norm = norm(update)
        ratio = lr * (param_norm / update_norm) if adapt and param_norm != 0 and update_norm != 0 else lr
        p -= ratio * update


def lars_step(hp, params, states, grads, group_state):
    """Lightning-bolts LARS.step, with the trust ratio 1 (and weight decay kept) where a norm is 0."""
    lr, mu, dampening, wd = hp["lr"], hp["momentum"], hp["dampening"], hp["weight_decay"]
    for i, p in enumerate(params):
        s = states[i]
        g = -grads[i] if hp["maximize"] else grads[i]
        d = g + wd * p
        param_norm, grad_norm = norm(p), norm(g)
        if not hp["exclude_from_layer_adaptation"] and param_norm != 0 and grad_norm != 0:
            d = d * (hp["trust_coefficient"] * param_norm / (grad_norm + param_norm * wd + hp["eps"]))
        if mu != 0:
            if "momentum_buffer" not in s:
                s["momentum_buffer"] = d.copy()
            else:
                s["momentum_buffer"] *= mu
                s["momentum_buffer"] += (1 - dampening) * d
            d = d + mu * s["momentum_buffer"] if hp["nesterov"] else s["momentum_buffer"]
        p -= lr * d


FLOAT64_STEPS = {"nadam": nadam_step, "radam": radam_step, "lion": lion_step, "ademamix": ademamix_step,
                 "lamb": lamb_step, "lars": lars_step}


# ---------------------------------------------------------------------------------------------
# Running a case


class Trajectory:
    def __init__(self, problems):
        self.problems = problems
        self.grads = [[[] for _ in group] for group in problems]
        self.params = [[[] for _ in group] for group in problems]
        self.ax = [[[] for _ in group] for group in problems]
        self.final_state = None
        self.final_scalars = None


def run_torch(case, problems):
    torch.manual_seed(0)
    tensors = [[torch.nn.Parameter(torch.tensor(pr.initial)) for pr in group] for group in problems]
    param_groups = [dict(params=ts, **g.torch_hp) for ts, g in zip(tensors, case.groups)]
    # The first group's values also go to the constructor: some are read only there (Adagrad's
    # initial_accumulator_value fills state["sum"] in __init__, ignoring the groups' values).
    optimizer = case.torch_class(param_groups, **case.groups[0].torch_hp)
    out = Trajectory(problems)
    for step in range(1, STEPS + 1):
        for gi, group in enumerate(problems):
            for ti, pr in enumerate(group):
                g = pr.grad(step, tensors[gi][ti].detach().numpy())
                out.grads[gi][ti].append(g.copy())
                tensors[gi][ti].grad = torch.tensor(g)
        optimizer.step()
        for gi, group in enumerate(problems):
            for ti, _ in enumerate(group):
                p = tensors[gi][ti]
                out.params[gi][ti].append(p.detach().numpy().copy())
                if "ax" in optimizer.state[p]:
                    out.ax[gi][ti].append(optimizer.state[p]["ax"].numpy().copy())
        if step == LR_CHANGE_AFTER_STEP - case.torch_lr_lag:
            for param_group, g in zip(optimizer.param_groups, case.groups):
                param_group["lr"] = g.new_lr
    out.final_state, out.final_scalars = [], []
    for group in tensors:
        states, scalars = [], []
        for p in group:
            tensor_states, scalar_states = {}, {}
            for key, value in optimizer.state[p].items():
                if value is None:  # SGD without momentum keeps momentum_buffer = None
                    continue
                if torch.is_tensor(value) and value.dim() > 0:
                    tensor_states[key] = value.numpy().copy()
                else:
                    scalar_states[key] = value.item() if torch.is_tensor(value) else value
            states.append(tensor_states)
            scalars.append(scalar_states)
        out.final_state.append(states)
        out.final_scalars.append(scalars)
    return out


def run_float64(case, problems, step_function=None):
    step_function = step_function or FLOAT64_STEPS[case.reference]
    params = [[pr.initial.astype(np.float64) for pr in group] for group in problems]
    states = [[{} for _ in group] for group in problems]
    group_states = [{} for _ in problems]
    hps = [dict(g.torch_hp) for g in case.groups]
    out = Trajectory(problems)
    for step in range(1, STEPS + 1):
        grads = [[pr.grad(step, params[gi][ti]) for ti, pr in enumerate(group)] for gi, group in enumerate(problems)]
        global_norm = math.sqrt(sum(norm(g.astype(np.float64)) ** 2 for group in grads for g in group))
        for gi, group in enumerate(problems):
            group_states[gi]["global_grad_norm"] = global_norm
            step_function(hps[gi], params[gi], states[gi], [g.astype(np.float64) for g in grads[gi]],
                          group_states[gi])
            for ti, _ in enumerate(group):
                out.grads[gi][ti].append(grads[gi][ti])
                out.params[gi][ti].append(params[gi][ti].copy())
        if step == LR_CHANGE_AFTER_STEP:
            for gi, g in enumerate(case.groups):
                hps[gi]["lr"] = g.new_lr
    out.final_state, out.final_scalars = [], []
    for gi, group in enumerate(states):
        out.final_state.append([{k: v for k, v in s.items() if isinstance(v, np.ndarray)} for s in group])
        scalars = [{k: v for k, v in s.items() if not isinstance(v, np.ndarray)} for s in group]
        if "step" in group_states[gi]:
            for sc in scalars:
                sc["step"] = group_states[gi]["step"]
        out.final_scalars.append(scalars)
    return out


def cross_check_float64_against_torch(case, problems, torch_run):
    """Validates a float64 transcription on the cases torch 1.13 also runs (no newer option)."""
    if case.algorithm not in ("nadam", "radam"):
        return None
    hp = dict(case.groups[0].torch_hp, maximize=False, decoupled_weight_decay=False)
    shadow = Case(case.name, case.algorithm, [Group(hp, None, case.groups[0].new_lr)], reference=case.algorithm)
    # The float64 run must see the same gradients as torch: replay torch's recorded gradients.
    replay = [[ReplayedProblem(pr, torch_run.grads[gi][ti]) for ti, pr in enumerate(group)]
              for gi, group in enumerate(problems)]
    ours = run_float64(shadow, replay)
    worst = 0.0
    for gi, group in enumerate(problems):
        for ti, _ in enumerate(group):
            for a, b in zip(ours.params[gi][ti], torch_run.params[gi][ti]):
                b = b.astype(np.float64)
                worst = max(worst, float(np.max(np.abs(a - b) / (np.abs(b) + 1e-3))))
    assert worst < 1e-5, "%s: float64 transcription differs from torch 1.13 by %g" % (case.name, worst)
    return worst


class ReplayedProblem:
    def __init__(self, problem, grads):
        self.name, self.size, self.initial = problem.name, problem.size, problem.initial
        self.grads = grads

    def grad(self, step, param):
        return self.grads[step - 1]


# ---------------------------------------------------------------------------------------------
# Output


def case_json(case, run):
    precision = case.precision
    if case.reference == "torch":
        reference = "torch.optim.%s, torch %s, float32, CPU, foreach=%s" % (
            case.torch_class.__name__, torch.__version__, case.groups[0].torch_hp.get("foreach"))
    else:
        reference = "float64 NumPy: " + FLOAT64_STEPS[case.reference].__doc__.strip()
    groups = []
    for gi, (group, problems) in enumerate(zip(case.groups, run.problems)):
        tensors = []
        for ti, pr in enumerate(problems):
            t = {
                "name": pr.name,
                "size": pr.size,
                "initial": hex_array(require_float32(pr.initial), "float32"),
                "grads": [hex_array(require_float32(g), "float32") for g in run.grads[gi][ti]],
                "params": [hex_array(p, precision) for p in run.params[gi][ti]],
            }
            if run.ax[gi][ti]:
                t["ax"] = [hex_array(a, precision) for a in run.ax[gi][ti]]
            t["final_state"] = {k: hex_array(v, precision) for k, v in sorted(run.final_state[gi][ti].items())}
            scalars = {}
            for k, v in sorted(run.final_scalars[gi][ti].items()):
                scalars[k] = int(v) if k == "step" else (f32_hex(v) if precision == "float32" else f64_hex(v))
            t["final_scalars"] = scalars
            tensors.append(t)
        groups.append({
            "torch": group.torch_hp,
            "fusedopt": group.fusedopt,
            "lr_change": {"after_step": LR_CHANGE_AFTER_STEP, "lr": group.new_lr},
            "tensors": tensors,
        })
    out = {"name": case.name, "algorithm": case.algorithm, "precision": precision, "reference": reference}
    if case.notes:
        out["notes"] = case.notes
    out["steps"] = STEPS
    out["groups"] = groups
    return out


def dumps(value, indent=0):
    """JSON with one line per array of scalars (a step's tensor), indented structure otherwise."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ["%s %s: %s" % (pad, json.dumps(k), dumps(v, indent + 1)) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and isinstance(value[0], (list, dict)):
        items = ["%s %s" % (pad, dumps(v, indent + 1)) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, separators=(", ", ": "))


ALGORITHMS = [
    ("sgd", sgd_cases), ("adam", lambda: adam_cases("adam")), ("adamw", lambda: adam_cases("adamw")),
    ("rmsprop", rmsprop_cases), ("adagrad", adagrad_cases), ("nadam", nadam_cases), ("radam", radam_cases),
    ("adamax", adamax_cases), ("adadelta", adadelta_cases), ("rprop", rprop_cases), ("asgd", asgd_cases),
    ("lion", lion_cases), ("ademamix", ademamix_cases), ("lamb", lamb_cases), ("lars", lars_cases),
]


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    for algorithm, make_cases in ALGORITHMS:
        cases_json = []
        for case in make_cases():
            problems = make_problems(case.name, case.layout)
            if case.reference == "torch":
                run = run_torch(case, problems)
                worst = cross_check_float64_against_torch(case, problems, run)
                if worst is not None:
                    print("  %s: float64 transcription within %.2g of torch 1.13" % (case.name, worst))
            else:
                run = run_float64(case, problems)
            cases_json.append(case_json(case, run))
        document = {
            "format": FORMAT,
            "algorithm": algorithm,
            "generator": "src/test/python/torch_reference.py",
            "torch_version": torch.__version__,
            "encoding": "floats are the hex digits of their IEEE-754 bits: 8 for float32, 16 for float64",
            "lr_change": "after step %d every group's lr is set to its lr_change.lr" % LR_CHANGE_AFTER_STEP,
            "cases": cases_json,
        }
        path = os.path.join(OUT_DIR, algorithm + ".json")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(dumps(document) + "\n")
        print("%s: %d cases -> %s" % (algorithm, len(cases_json), os.path.relpath(path)))


if __name__ == "__main__":
    sys.exit(main())
