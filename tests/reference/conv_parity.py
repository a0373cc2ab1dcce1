#!/usr/bin/python3
"""Checks a conv_dump file (tests/tools/conv_dump.c) against PyTorch: every kernel of conv.h fed the same tensors.

usage: conv_parity.py DUMP.h5
Per case: torch.nn.functional.conv2d (conv), the reference's GatedConv2d (gated), the reference's MaskedConv2d
(masked: its forward multiplies weight.data by the mask in place, and autograd's weight gradient is the full one),
nn.BatchNorm2d in training mode (then its running statistics and the evaluation-mode output with them; momentum
0.1 and eps 1e-5, the defaults the reference's PixelHVAE keeps), ReLU. With t = the float64 evaluation and
a = |t32 - t|, the float32 evaluation's own rounding error (as compare.py):
  every output:   max |c - t| <= 1e-5 max |t| + max a
  every gradient: ||g_c - t|| <= 1e-4 ||t|| + ||a||
Also exact: the C mask equals the reference's mask buffer, the weight the reference's forward leaves behind
equals weight * mask, and the reference's weight gradient is non-zero at masked positions (so the dweight
comparison tests that conv.h leaves it unmasked). Prints one line per tensor (case, name, |t|, worst |diff|, relative error) and a
summary; exits 1 on any failure, 2 on an unreadable dump.
"""
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT_RTOL = 1e-5
GRAD_RTOL = 1e-4


# ---- the reference's modules (jmtomczak/vae_vampprior, utils/nn.py), as written there -------------------------
class GatedConv2d(nn.Module):
    def __init__(self, input_channels, output_channels, kernel_size, stride, padding, dilation=1, activation=None):
        super(GatedConv2d, self).__init__()
        self.activation = activation
        self.sigmoid = nn.Sigmoid()
        self.h = nn.Conv2d(input_channels, output_channels, kernel_size, stride, padding, dilation)
        self.g = nn.Conv2d(input_channels, output_channels, kernel_size, stride, padding, dilation)

    def forward(self, x):
        if self.activation is None:
            h = self.h(x)
        else:
            h = self.activation(self.h(x))
        g = self.sigmoid(self.g(x))
        return h * g


class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, *args, **kwargs):
        super(MaskedConv2d, self).__init__(*args, **kwargs)
        assert mask_type in {'A', 'B'}
        self.register_buffer('mask', self.weight.data.clone())
        _, _, kH, kW = self.weight.size()
        self.mask.fill_(1)
        self.mask[:, :, kH // 2, kW // 2 + (mask_type == 'B'):] = 0
        self.mask[:, :, kH // 2 + 1:] = 0

    def forward(self, x):
        self.weight.data *= self.mask
        return super(MaskedConv2d, self).forward(x)


# ---- one case at one precision --------------------------------------------------------------------------------
def tensor(g, name, dtype, grad=False):
    return torch.tensor(np.array(g[name]), dtype=dtype, requires_grad=grad)


def load_module(module, grp, dtype):
    module.to(dtype)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(tensor(grp["in"], name, dtype))
    return module


def run_case(grp, dtype):
    """({output name: tensor}, {gradient name: tensor}, {check name: bool}) of torch on the case's inputs."""
    kind = grp.attrs["kind"].decode() if isinstance(grp.attrs["kind"], bytes) else grp.attrs["kind"]
    x = tensor(grp["in"], "x", dtype, grad=True)
    dy = tensor(grp["in"], "dy", dtype)
    outs, exact = {}, {}
    a = grp.attrs
    if kind in ("conv", "masked", "gated"):
        cin, cout = x.shape[1], dy.shape[1]
        k, s, p = int(a["k"]), int(a["stride"]), int(a["pad"])
        bias = "bias" in grp["in"]
        if kind == "conv":
            m = nn.Conv2d(cin, cout, k, s, p, bias=bias)
        elif kind == "gated":
            m = GatedConv2d(cin, cout, k, s, p)
        else:
            mt = a["mask_type"].decode() if isinstance(a["mask_type"], bytes) else a["mask_type"]
            m = MaskedConv2d(mt, cin, cout, k, s, p, bias=bias)
        load_module(m, grp, dtype)
        if kind == "masked":
            w0 = m.weight.detach().clone()
            exact["mask == reference mask"] = np.array_equal(np.array(grp["in"]["mask"]), m.mask.numpy())
        outs["y"] = m(x)
        if kind == "masked":
            exact["weight after forward == weight * mask"] = torch.equal(m.weight.detach(), w0 * m.mask)
    elif kind == "batchnorm":
        m = load_module(nn.BatchNorm2d(x.shape[1]), grp, dtype)  # momentum 0.1, eps 1e-5 as the reference
        with torch.no_grad():
            m.running_mean.copy_(tensor(grp["in"], "running_mean", dtype))
            m.running_var.copy_(tensor(grp["in"], "running_var", dtype))
        m.train()
        outs["y"] = m(x)
    elif kind == "relu":
        m = nn.ReLU()
        outs["y"] = m(x)
    else:
        raise ValueError(f"unknown kind {kind}")
    outs["y"].backward(dy)
    if kind == "masked":  # the semantics conv.h keeps: autograd's weight gradient is not masked
        masked_grad = (m.weight.grad * (1 - m.mask)).abs().sum()
        exact["reference dweight non-zero at masked positions"] = bool(masked_grad > 0)
    grads = {"x": x.grad}
    grads.update({n: p.grad for n, p in m.named_parameters()})
    if kind == "batchnorm":
        outs["running_mean"], outs["running_var"] = m.running_mean.clone(), m.running_var.clone()
        m.eval()
        with torch.no_grad():
            outs["y_eval"] = m(x)
    return ({n: t.detach().double().numpy() for n, t in outs.items()},
            {n: t.detach().double().numpy() for n, t in grads.items()}, exact)


# ---- comparison -----------------------------------------------------------------------------------------------
def check(case, name, c, t64, t32, is_grad):
    """One tensor: prints its line, returns True if within tolerance."""
    if c.shape != t64.shape:
        print(f"FAIL {case:22s} {name:14s} shape {c.shape} in the dump, {t64.shape} in torch")
        return False
    acc = np.abs(t32 - t64)
    if is_grad:
        ref, diff = np.linalg.norm(t64), np.linalg.norm(c - t64)
        allow = GRAD_RTOL * ref + np.linalg.norm(acc)
    else:
        ref, diff = np.abs(t64).max(), np.abs(c - t64).max()
        allow = OUT_RTOL * ref + acc.max()
    ok = bool(diff <= allow) and np.all(np.isfinite(c))
    rel = diff / ref if ref > 0 else diff
    print(f"{'ok  ' if ok else 'FAIL'} {case:22s} {('d' if is_grad else '') + name:14s} |t| {ref:9.3e}  "
          f"worst {diff:9.3e}  rel {rel:8.2e}  (allowed {allow:8.2e})")
    return ok


def compare_tensors(case, dumped, t64, t32, is_grad):
    """C's outputs (is_grad False) or gradients against torch's: (failures, checks, worst relative difference
    against float64 torch: of max |t| for outputs, of the norm for gradients)."""
    what = "gradient" if is_grad else "output"
    fails, n, worst = 0, 0, 0.0
    for name in sorted(set(t64) | set(dumped)):
        if name not in t64 or name not in dumped:
            print(f"FAIL {case:22s} {what} {name} missing on one side")
            fails += 1
            continue
        c = np.array(dumped[name], dtype=np.float64)
        fails += not check(case, name, c, t64[name], t32[name], is_grad)
        if is_grad:
            d = np.linalg.norm(c - t64[name]) / max(np.linalg.norm(t64[name]), 1e-30)
        else:
            d = np.abs(c - t64[name]).max() / max(np.abs(t64[name]).max(), 1e-30)
        worst = max(worst, d)
        n += 1
    return fails, n, worst


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    try:
        f = h5py.File(argv[1], "r")
    except OSError as e:
        print(f"conv_parity: cannot read {argv[1]}: {e}")
        return 2
    torch.manual_seed(0)
    fails, n, worst = 0, 0, {"out": 0.0, "grad": 0.0}
    for case in f:
        grp = f[case]
        o64, g64, exact = run_case(grp, torch.float64)
        o32, g32, _ = run_case(grp, torch.float32)
        for t64, t32, is_grad in ((o64, o32, False), (g64, g32, True)):
            nf, nc, w = compare_tensors(case, grp["grad" if is_grad else "out"], t64, t32, is_grad)
            fails, n = fails + nf, n + nc
            key = "grad" if is_grad else "out"
            worst[key] = max(worst[key], w)
        for what, ok in exact.items():
            print(f"{'ok  ' if ok else 'FAIL'} {case:22s} {what}")
            fails += not ok
            n += 1
    print(f"conv parity: {n - fails} of {n} checks passed; worst relative difference against float64 torch: "
          f"outputs {worst['out']:.2e} (of max |t|), gradients {worst['grad']:.2e} (of the norm)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
