"""Independent PyTorch implementation of the VampPrior paper's VAE / two-level HVAE, used to check vamp_mpi.

Module names follow the paper's reference code, so a parameter dict from vamp_mpi loads with
load_state_dict(strict=True). Log-densities are fully normalised, like vamp_mpi (the reference code drops
-1/2 log 2 pi, which cancels in the ELBO). Written for python3-torch 1.13 (CPU).
"""
import math

import numpy as np
import torch
import torch.nn as nn

LOG2PI = math.log(2.0 * math.pi)
# The likelihoods' small constants as float32 holds them, so that the float64 mode (model.double(), for
# diagnostics) computes what a float32 implementation means: float32(1 - 1e-5) is 1 - 1.0014e-5, and once the
# Bernoulli clamp saturates, log(1 - p) differs by 1e-3 between the two readings.
P_LO = float(np.float32(1e-5))
P_HI = float(np.float32(1.0 - 1e-5))
CDF_EPS = float(np.float32(1e-7))


class GatedDense(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.h = nn.Linear(n_in, n_out)
        self.g = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.h(x) * torch.sigmoid(self.g(x))


class NonLinear(nn.Module):
    """Linear followed by an activation; keeps the reference's ".linear" in parameter names."""

    def __init__(self, n_in, n_out, activation, bias=True):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=bias)
        self.activation = activation

    def forward(self, x):
        return self.activation(self.linear(x))


def log_normal(z, mean, logvar):
    return torch.sum(-0.5 * (LOG2PI + logvar + (z - mean) ** 2 * torch.exp(-logvar)), dim=-1)


class Model(nn.Module):
    def __init__(self, model_type, likelihood, prior, D, H, Z1, Z2, K):
        super().__init__()
        self.hvae = model_type == "hvae"
        self.gray = likelihood == "logistic256"
        self.prior = prior
        self.K = K
        zt = Z2 if self.hvae else Z1
        lv = lambda n_in, n_out: NonLinear(n_in, n_out, nn.Hardtanh(-6.0, 2.0))
        if self.hvae:
            self.q_z2_layers = nn.Sequential(GatedDense(D, H), GatedDense(H, H))
            self.q_z2_mean = nn.Linear(H, Z2)
            self.q_z2_logvar = lv(H, Z2)
            self.q_z1_layers_x = nn.Sequential(GatedDense(D, H))
            self.q_z1_layers_z2 = nn.Sequential(GatedDense(Z2, H))
            self.q_z1_layers_joint = nn.Sequential(GatedDense(2 * H, H))
            self.q_z1_mean = nn.Linear(H, Z1)
            self.q_z1_logvar = lv(H, Z1)
            self.p_z1_layers = nn.Sequential(GatedDense(Z2, H), GatedDense(H, H))
            self.p_z1_mean = nn.Linear(H, Z1)
            self.p_z1_logvar = lv(H, Z1)
            self.p_x_layers_z1 = nn.Sequential(GatedDense(Z1, H))
            self.p_x_layers_z2 = nn.Sequential(GatedDense(Z2, H))
            self.p_x_layers_joint = nn.Sequential(GatedDense(2 * H, H))
        else:
            self.q_z_layers = nn.Sequential(GatedDense(D, H), GatedDense(H, H))
            self.q_z_mean = nn.Linear(H, Z1)
            self.q_z_logvar = lv(H, Z1)
            self.p_x_layers = nn.Sequential(GatedDense(Z1, H), GatedDense(H, H))
        self.p_x_mean = NonLinear(H, D, nn.Sigmoid())
        if self.gray:
            self.p_x_logvar = NonLinear(H, D, nn.Hardtanh(-4.5, 0.0))
        if prior in ("vampprior", "vampprior_data"):
            self.means = NonLinear(K, D, nn.Hardtanh(0.0, 1.0), bias=False)
        if prior == "mog":
            self.mog = nn.Module()
            self.mog.means = nn.Parameter(torch.zeros(K, zt))
            self.mog.logvars = nn.Parameter(torch.zeros(K, zt))

    def q_top(self, x):
        if self.hvae:
            h = self.q_z2_layers(x)
            return self.q_z2_mean(h), self.q_z2_logvar(h)
        h = self.q_z_layers(x)
        return self.q_z_mean(h), self.q_z_logvar(h)

    def log_p_top(self, z):
        if self.prior == "standard":
            return log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        if self.prior == "mog":
            m, lv = self.mog.means, self.mog.logvars
        else:
            # pseudo-inputs u_k = hardtanh(W[:, k]): applying the layer to the identity gives them row-wise
            u = self.means(torch.eye(self.K, dtype=self.means.linear.weight.dtype))
            m, lv = self.q_top(u)
        a = log_normal(z.unsqueeze(1), m.unsqueeze(0), lv.unsqueeze(0)) - math.log(self.K)  # (B, K)
        return torch.logsumexp(a, dim=1)

    def p_x(self, h):
        mean = self.p_x_mean(h)
        if not self.gray:
            return mean, None
        return torch.clamp(mean, 1.0 / 512.0, 1.0 - 1.0 / 512.0), self.p_x_logvar(h)

    def log_px(self, x, mean, logvar):
        if not self.gray:
            p = torch.clamp(mean, P_LO, P_HI)
            return torch.sum(x * torch.log(p) + (1.0 - x) * torch.log(1.0 - p), dim=1)
        bin_size = 1.0 / 256.0
        xb = torch.floor(x / bin_size) * bin_size
        scale = torch.exp(logvar)
        cdf_plus = torch.sigmoid((xb + bin_size - mean) / scale)
        cdf_minus = torch.sigmoid((xb - mean) / scale)
        return torch.sum(torch.log(cdf_plus - cdf_minus + CDF_EPS), dim=1)

    def loss_terms(self, x, eps_top, eps1):
        """Per-row re = -log p(x|z..) and kl = log q(z..|x) - log p(z..)."""
        mt, lvt = self.q_top(x)
        zt = mt + torch.exp(0.5 * lvt) * eps_top
        kl = log_normal(zt, mt, lvt) - self.log_p_top(zt)
        if self.hvae:
            hq = self.q_z1_layers_joint(torch.cat((self.q_z1_layers_x(x), self.q_z1_layers_z2(zt)), 1))
            m1, lv1 = self.q_z1_mean(hq), self.q_z1_logvar(hq)
            z1 = m1 + torch.exp(0.5 * lv1) * eps1
            hp = self.p_z1_layers(zt)
            pm1, plv1 = self.p_z1_mean(hp), self.p_z1_logvar(hp)
            kl = kl + log_normal(z1, m1, lv1) - log_normal(z1, pm1, plv1)
            h = self.p_x_layers_joint(torch.cat((self.p_x_layers_z1(z1), self.p_x_layers_z2(zt)), 1))
        else:
            h = self.p_x_layers(zt)
        mean, logvar = self.p_x(h)
        re = -self.log_px(x, mean, logvar)
        return re, kl


def check_names(model, arrays):
    """Problems between the model's parameters and a {name: array} dict, as three lists: names missing from
    the dict, names the model does not have, and (name, dict shape, model shape) for shape mismatches."""
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(arrays))
    unexpected = sorted(set(arrays) - set(own))
    shapes = [(k, tuple(np.shape(arrays[k])), tuple(own[k].shape)) for k in sorted(set(own) & set(arrays))
              if tuple(np.shape(arrays[k])) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def load_params(model, arrays):
    """Strict load of {name: array}: every name and shape must match, else ValueError naming them all.
    Values are converted to the model's dtype (float32, or float64 after model.double())."""
    missing, unexpected, shapes = check_names(model, arrays)
    if missing or unexpected or shapes:
        raise ValueError(f"parameter names/shapes do not match the reference: missing {missing}, "
                         f"unexpected {unexpected}, shape (given, expected) {shapes}")
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(torch.as_tensor(np.asarray(arrays[k]), dtype=p.dtype))


def step(model, x, eps_top, eps1, beta):
    """One training step's loss = mean_rows(re + beta * kl) and its autograd gradient.
    x (B,D), eps_top (B,Ztop), eps1 (B,Z1) or None: arrays or tensors, cast to the model's dtype.
    Returns loss (float), re (B), kl (B) as numpy, and {name: gradient as numpy} for every parameter (zeros
    where autograd reached none)."""
    dt = next(model.parameters()).dtype
    t = lambda a: None if a is None else torch.as_tensor(np.asarray(a), dtype=dt)
    model.zero_grad(set_to_none=True)
    re, kl = model.loss_terms(t(x), t(eps_top), t(eps1))
    loss = torch.mean(re + beta * kl)
    loss.backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().numpy()
             for k, p in model.named_parameters()}
    return loss.item(), re.detach().numpy(), kl.detach().numpy(), grads
