"""Independent PyTorch implementation of the VampPrior paper's VAE / two-level HVAE, used to check vamp_mpi.

Module names follow the paper's reference code, so a parameter dict from vamp_mpi loads with
load_state_dict(strict=True). Log-densities are fully normalised, like vamp_mpi (the reference code drops
-1/2 log 2 pi, which cancels in the ELBO). Written for python3-torch 1.13 (CPU).
"""
import ctypes
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


def keep_freed_memory():
    """glibc's malloc gives a freed block of 128 KiB or more back to the kernel (munmap, or a trim of the heap), so
    every large temporary of a step (the VampPrior's 100 x 500 x 40 floats, 8 MB) is fresh pages: on this machine
    their page faults made a VampPrior step 3x slower. A trainer escapes it by accident once it has freed a large
    block (glibc then raises both thresholds; tests/reference/train_ref.py did, after loading its data), and
    PyTorch's tuning guide advises an allocator that keeps memory. Raised on purpose by analysis/bench_torch.py and
    train_ref.py, so that the peer runs at its best and not at the mercy of what the process freed before."""
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if not (libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)):
        raise OSError("mallopt failed")


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


def gaussian_heads(n_in, n_out):
    """The mean and the hardtanh(-6, 2) log-variance layer of a diagonal Gaussian on a hidden layer."""
    return nn.Linear(n_in, n_out), NonLinear(n_in, n_out, nn.Hardtanh(-6.0, 2.0))


class Model(nn.Module):
    def __init__(self, model_type, likelihood, prior, D, H, Z1, Z2, K):
        super().__init__()
        self.hvae = model_type == "hvae"
        self.logistic = likelihood == "logistic256"
        self.prior = prior
        self.K = K
        zt = Z2 if self.hvae else Z1
        self.Ztop, self.Z1 = zt, (Z1 if self.hvae else 0)
        if self.hvae:
            self.q_z2_layers = nn.Sequential(GatedDense(D, H), GatedDense(H, H))
            self.q_z2_mean, self.q_z2_logvar = gaussian_heads(H, Z2)
            self.q_z1_layers_x = nn.Sequential(GatedDense(D, H))
            self.q_z1_layers_z2 = nn.Sequential(GatedDense(Z2, H))
            self.q_z1_layers_joint = nn.Sequential(GatedDense(2 * H, H))
            self.q_z1_mean, self.q_z1_logvar = gaussian_heads(H, Z1)
            self.p_z1_layers = nn.Sequential(GatedDense(Z2, H), GatedDense(H, H))
            self.p_z1_mean, self.p_z1_logvar = gaussian_heads(H, Z1)
            self.p_x_layers_z1 = nn.Sequential(GatedDense(Z1, H))
            self.p_x_layers_z2 = nn.Sequential(GatedDense(Z2, H))
            self.p_x_layers_joint = nn.Sequential(GatedDense(2 * H, H))
        else:
            self.q_z_layers = nn.Sequential(GatedDense(D, H), GatedDense(H, H))
            self.q_z_mean, self.q_z_logvar = gaussian_heads(H, Z1)
            self.p_x_layers = nn.Sequential(GatedDense(Z1, H), GatedDense(H, H))
        self.p_x_mean = NonLinear(H, D, nn.Sigmoid())
        if self.logistic:
            self.p_x_logvar = NonLinear(H, D, nn.Hardtanh(-4.5, 0.0))
        self.add_prior_parameters(D, zt)

    def add_prior_parameters(self, D, zt):
        """The pseudo-inputs (VampPrior: a bias-free layer (D, K) with hardtanh to [0, 1]) or the MoG's components."""
        if self.prior in ("vampprior", "vampprior_data"):
            self.means = NonLinear(self.K, D, nn.Hardtanh(0.0, 1.0), bias=False)
        if self.prior == "mog":
            self.mog = nn.Module()
            self.mog.means = nn.Parameter(torch.zeros(self.K, zt))
            self.mog.logvars = nn.Parameter(torch.zeros(self.K, zt))

    def q_top(self, x):
        if self.hvae:
            h = self.q_z2_layers(x)
            return self.q_z2_mean(h), self.q_z2_logvar(h)
        h = self.q_z_layers(x)
        return self.q_z_mean(h), self.q_z_logvar(h)

    def prior_components(self):
        """The K mixture components (means, logvars), each (K, Ztop), of a mog / VampPrior prior; None for the
        standard prior. Evaluations that call log_p_top many times compute them once."""
        if self.prior == "standard":
            return None
        if self.prior == "mog":
            return self.mog.means, self.mog.logvars
        # pseudo-inputs u_k = hardtanh(W[:, k]): applying the layer to the identity gives them row-wise
        u = self.means(torch.eye(self.K, dtype=self.means.linear.weight.dtype))
        return self.q_top(u)

    def log_p_top(self, z, comps=None):
        """log p(z) of the top latent, z (B, Ztop); comps: prior_components(), computed here if None."""
        if self.prior == "standard":
            return log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        m, lv = comps if comps is not None else self.prior_components()
        if torch.is_grad_enabled():
            a = log_normal(z.unsqueeze(1), m.unsqueeze(0), lv.unsqueeze(0))  # (B, K)
        else:
            # Evaluation (blocks of 500 importance samples): the same values, computed for a few components at a
            # time so that the (B, c, Z) temporaries stay in cache, 18x faster than one (500, 500, 40) pass. The
            # autograd path, which the parity tests and analysis/bench_torch.py use, stays one pass.
            c = max(1, (1 << 19) // max(1, z.shape[0] * z.shape[1]))
            a = torch.cat([log_normal(z.unsqueeze(1), m[k:k + c].unsqueeze(0), lv[k:k + c].unsqueeze(0))
                           for k in range(0, self.K, c)], dim=1)
        return torch.logsumexp(a - math.log(self.K), dim=1)

    def p_x(self, h):
        mean = self.p_x_mean(h)
        if not self.logistic:
            return mean, None
        return torch.clamp(mean, 1.0 / 512.0, 1.0 - 1.0 / 512.0), self.p_x_logvar(h)

    def log_px(self, x, mean, logvar):
        if not self.logistic:
            p = torch.clamp(mean, P_LO, P_HI)
            return torch.sum(x * torch.log(p) + (1.0 - x) * torch.log(1.0 - p), dim=1)
        bin_size = 1.0 / 256.0
        xb = torch.floor(x / bin_size) * bin_size
        scale = torch.exp(logvar)
        cdf_plus = torch.sigmoid((xb + bin_size - mean) / scale)
        cdf_minus = torch.sigmoid((xb - mean) / scale)
        return torch.sum(torch.log(cdf_plus - cdf_minus + CDF_EPS), dim=1)

    def encode(self, x):
        """What depends on x alone: q(z_top|x) (mean, logvar) and, for the hvae, the x-branch of q(z1|x,z2)."""
        mt, lvt = self.q_top(x)
        return mt, lvt, (self.q_z1_layers_x(x) if self.hvae else None)

    def loss_terms(self, x, eps_top, eps1, enc=None, comps=None):
        """Per-row re = -log p(x|z..) and kl = log q(z..|x) - log p(z..).
        enc: encode(x) if already known; then x (1, D) and its encoding (1, .) may stand for every row of the
        noise (B rows: B samples of one image, as the importance-sampled log-likelihood draws them).
        comps: prior_components(), computed here if None."""
        mt, lvt, hx = enc if enc is not None else self.encode(x)
        zt = mt + torch.exp(0.5 * lvt) * eps_top
        kl = log_normal(zt, mt, lvt) - self.log_p_top(zt, comps)
        if self.hvae:
            hq = self.q_z1_layers_joint(torch.cat((hx.expand(zt.shape[0], -1), self.q_z1_layers_z2(zt)), 1))
            m1, lv1 = self.q_z1_mean(hq), self.q_z1_logvar(hq)
            z1 = m1 + torch.exp(0.5 * lv1) * eps1
            hp = self.p_z1_layers(zt)
            pm1, plv1 = self.p_z1_mean(hp), self.p_z1_logvar(hp)
            kl = kl + log_normal(z1, m1, lv1) - log_normal(z1, pm1, plv1)
            mean, logvar = self.p_x_hvae(z1, zt)
        else:
            mean, logvar = self.p_x(self.p_x_layers(zt))
        re = -self.log_px(x, mean, logvar)
        return re, kl

    def p_x_hvae(self, z1, z2):
        """p(x|z1,z2) of the two-level model: the likelihood's mean and (logistic) log-scale, each (B, D)."""
        return self.p_x(self.p_x_layers_joint(torch.cat((self.p_x_layers_z1(z1), self.p_x_layers_z2(z2)), 1)))

    def posterior_means(self, x):
        """E_q[z_top | x] and, for the hvae, E_q[z1 | x, z2 = E_q[z2 | x]] (else None): what active units measure."""
        mt, _, hx = self.encode(x)
        if not self.hvae:
            return mt, None
        return mt, self.q_z1_mean(self.q_z1_layers_joint(torch.cat((hx, self.q_z1_layers_z2(mt)), 1)))

    def init_params(self, gen, pseudo_mean=0.05, pseudo_std=0.01, pseudo_images=None):
        """vamp_mpi's and the reference's initialisation, drawn from the torch generator gen: Linear weights
        N(0, 2 / fan_in) (He), biases U(+-1/sqrt(fan_in)) (torch.nn.Linear's default, which the reference keeps);
        convolutions torch's default (weights and biases U(+-1/sqrt(fan_in)));
        pseudo-inputs N(pseudo_mean, pseudo_std), or pseudo_images (K, D) + N(0, pseudo_std) noise
        (vampprior_data); MoG means N(0, 1) and log-variances 0."""
        pseudo = self.means.linear if self.prior in ("vampprior", "vampprior_data") else None
        with torch.no_grad():
            for mod in self.modules():
                if isinstance(mod, nn.Conv2d):  # torch's default: U(+-1/sqrt(fan_in)) for weight and bias
                    bound = 1.0 / math.sqrt(mod.weight[0].numel())
                    mod.weight.uniform_(-bound, bound, generator=gen)
                    if mod.bias is not None:
                        mod.bias.uniform_(-bound, bound, generator=gen)
                if not isinstance(mod, nn.Linear) or mod is pseudo:
                    continue
                mod.weight.normal_(0.0, math.sqrt(2.0 / mod.in_features), generator=gen)
                if mod.bias is not None:
                    bound = 1.0 / math.sqrt(mod.in_features)
                    mod.bias.uniform_(-bound, bound, generator=gen)
            if pseudo is not None:  # weight (D, K): column k is pseudo-input k before its hardtanh
                if pseudo_images is None:
                    pseudo.weight.normal_(pseudo_mean, pseudo_std, generator=gen)
                else:
                    imgs = torch.as_tensor(pseudo_images, dtype=pseudo.weight.dtype).t()
                    pseudo.weight.copy_(imgs + pseudo_std * torch.randn(imgs.shape, generator=gen, dtype=imgs.dtype))
            if self.prior == "mog":
                self.mog.means.normal_(0.0, 1.0, generator=gen)
                self.mog.logvars.zero_()


class GatedConv2d(nn.Module):
    """The reference's GatedConv2d (utils/nn.py): conv_h(x) * sigmoid(conv_g(x))."""

    def __init__(self, c_in, c_out, k, stride, pad):
        super().__init__()
        self.h = nn.Conv2d(c_in, c_out, k, stride, pad)
        self.g = nn.Conv2d(c_in, c_out, k, stride, pad)

    def forward(self, x):
        return self.h(x) * torch.sigmoid(self.g(x))


class Conv2d(nn.Module):
    """The reference's Conv2d wrapper: keeps ".conv" in parameter names; activation after the convolution."""

    def __init__(self, c_in, c_out, k, stride, pad, activation):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, pad)
        self.activation = activation

    def forward(self, x):
        return self.activation(self.conv(x))


def conv_features(height, width):
    """Size of the encoders' flattened output: 6 channels after two stride-2 convolutions (294 for 28x28, 210
    for Frey Faces' 28x20; the reference hard-codes these)."""
    down = lambda n: (n - 1) // 2 + 1
    return 6 * down(down(height)) * down(down(width))


class ConvHVAE(Model):
    """The reference's convHVAE (models/convHVAE_2level.py): gated convolutional encoders for x, the MLP
    HVAE's p(z1|z2), and p(x|z1,z2) = GatedDense to D pixels, four GatedConv2d(64, k3) at full resolution and
    1x1 convolutions for the mean and the log-scale. The same priors and likelihoods as Model."""

    def __init__(self, likelihood, prior, height, width, H, Z1, Z2, K):
        nn.Module.__init__(self)
        D, F = height * width, conv_features(height, width)
        self.hvae, self.logistic, self.prior, self.K = True, likelihood == "logistic256", prior, K
        self.image = (1, height, width)
        self.Ztop, self.Z1 = Z2, Z1
        stack = lambda ks: nn.Sequential(*[GatedConv2d(i, o, k, s, k // 2) for (i, o, k, s) in ks])
        self.q_z2_layers = stack([(1, 32, 7, 1), (32, 32, 3, 2), (32, 64, 5, 1), (64, 64, 3, 2), (64, 6, 3, 1)])
        self.q_z2_mean = NonLinear(F, Z2, nn.Identity())
        self.q_z2_logvar = NonLinear(F, Z2, nn.Hardtanh(-6.0, 2.0))
        self.q_z1_layers_x = stack([(1, 32, 3, 1), (32, 32, 3, 2), (32, 64, 3, 1), (64, 64, 3, 2), (64, 6, 3, 1)])
        self.q_z1_layers_z2 = nn.Sequential(GatedDense(Z2, F))
        self.q_z1_layers_joint = nn.Sequential(GatedDense(2 * F, H))
        self.q_z1_mean = NonLinear(H, Z1, nn.Identity())
        self.q_z1_logvar = NonLinear(H, Z1, nn.Hardtanh(-6.0, 2.0))
        self.p_z1_layers = nn.Sequential(GatedDense(Z2, H), GatedDense(H, H))
        self.p_z1_mean = NonLinear(H, Z1, nn.Identity())
        self.p_z1_logvar = NonLinear(H, Z1, nn.Hardtanh(-6.0, 2.0))
        self.p_x_layers_z1 = nn.Sequential(GatedDense(Z1, H))
        self.p_x_layers_z2 = nn.Sequential(GatedDense(Z2, H))
        self.p_x_layers_joint_pre = nn.Sequential(GatedDense(2 * H, D))
        self.p_x_layers_joint = stack([(1, 64, 3, 1)] + [(64, 64, 3, 1)] * 3)
        self.p_x_mean = Conv2d(64, 1, 1, 1, 0, nn.Sigmoid())
        if self.logistic:
            self.p_x_logvar = Conv2d(64, 1, 1, 1, 0, nn.Hardtanh(-4.5, 0.0))
        self.add_prior_parameters(D, Z2)

    def as_image(self, x):
        return x.reshape(x.shape[0], *self.image)

    def q_top(self, x):
        h = self.q_z2_layers(self.as_image(x)).flatten(1)
        return self.q_z2_mean(h), self.q_z2_logvar(h)

    def encode(self, x):
        mt, lvt = self.q_top(x)
        return mt, lvt, self.q_z1_layers_x(self.as_image(x)).flatten(1)

    def p_x_hvae(self, z1, z2):
        h = self.p_x_layers_joint_pre(torch.cat((self.p_x_layers_z1(z1), self.p_x_layers_z2(z2)), 1))
        h = self.p_x_layers_joint(self.as_image(h))
        mean = self.p_x_mean(h).flatten(1)
        if not self.logistic:
            return mean, None
        return torch.clamp(mean, 1.0 / 512.0, 1.0 - 1.0 / 512.0), self.p_x_logvar(h).flatten(1)


class MaskedConv2d(nn.Conv2d):
    """The reference's MaskedConv2d (utils/nn.py): the weight is multiplied by the mask before every forward (in
    place, as the reference does, so that the masked weights stay zero); autograd's weight gradient is the full,
    unmasked one, as in the reference."""

    def __init__(self, mask_type, c_in, c_out, k, stride, pad, bias=False):
        super().__init__(c_in, c_out, k, stride, pad, bias=bias)
        self.register_buffer("mask", torch.ones_like(self.weight))
        self.mask[:, :, k // 2, k // 2 + (mask_type == "B"):] = 0
        self.mask[:, :, k // 2 + 1:] = 0

    def forward(self, x):
        with torch.no_grad():
            self.weight.mul_(self.mask)
        return super().forward(x)


class PixelHVAE(ConvHVAE):
    """The reference's PixelHVAE (models/PixelHVAE_2level.py): the convHVAE's encoders and p(z1|z2); p(x|z1,z2) a
    PixelCNN over [x, map(z1), map(z2)] (GatedDense to D pixels each): eight masked 3x3 convolutions (mask A,
    then B) of 64 channels without bias, each followed by BatchNorm2d and ReLU, then 1x1 heads (the mean's with a
    bias for binary data only, as the reference). The likelihood is evaluated in one pass (teacher forcing);
    BatchNorm uses batch statistics in training mode and running statistics after model.eval()."""

    def __init__(self, likelihood, prior, height, width, H, Z1, Z2, K):
        super().__init__(likelihood, prior, height, width, H, Z1, Z2, K)
        D = height * width
        for name in ("p_x_layers_joint_pre", "p_x_layers_joint"):
            delattr(self, name)
        self.p_x_layers_z1 = nn.Sequential(GatedDense(Z1, D))
        self.p_x_layers_z2 = nn.Sequential(GatedDense(Z2, D))
        layers = []
        for i in range(8):
            layers += [MaskedConv2d("A" if i == 0 else "B", 3 if i == 0 else 64, 64, 3, 1, 1),
                       nn.BatchNorm2d(64), nn.ReLU()]
        self.pixelcnn = nn.Sequential(*layers)
        self.p_x_mean = Conv2d(64, 1, 1, 1, 0, nn.Sigmoid())
        if self.logistic:
            self.p_x_mean.conv = nn.Conv2d(64, 1, 1, 1, 0, bias=False)
            self.p_x_logvar = Conv2d(64, 1, 1, 1, 0, nn.Hardtanh(-4.5, 0.0))
            self.p_x_logvar.conv = nn.Conv2d(64, 1, 1, 1, 0, bias=False)

    def loss_terms(self, x, eps_top, eps1, enc=None, comps=None):
        self.x_teacher = x  # the PixelCNN sees the image it scores (teacher forcing)
        return super().loss_terms(x, eps_top, eps1, enc, comps)

    def p_x_hvae(self, z1, z2):
        x = self.x_teacher.expand(z1.shape[0], -1)
        h = torch.cat((self.as_image(x), self.as_image(self.p_x_layers_z1(z1)), self.as_image(self.p_x_layers_z2(z2))), 1)
        h = self.pixelcnn(h)
        mean = self.p_x_mean(h).flatten(1)
        if not self.logistic:
            return mean, None
        return torch.clamp(mean, 1.0 / 512.0, 1.0 - 1.0 / 512.0), self.p_x_logvar(h).flatten(1)


def make_model(mtype, likelihood, prior, D, H, Z1, Z2, K, height=None, width=None):
    """The model vamp_mpi's model.type names: vae/hvae on D pixels, convhvae/pixelhvae on height x width images."""
    if mtype in ("convhvae", "pixelhvae"):
        cls = ConvHVAE if mtype == "convhvae" else PixelHVAE
        return cls(likelihood, prior, int(height), int(width), H, Z1, Z2, K)
    return Model(mtype, likelihood, prior, D, H, Z1, Z2, K)


def kept_buffers(model):
    """{name: tensor} of the buffers vamp_mpi keeps beside the parameters: BatchNorm's running statistics (the
    masks and num_batches_tracked are left out: they change no result)."""
    return {k: b for k, b in model.named_buffers() if k.endswith((".running_mean", ".running_var"))}


def state_tensors(model):
    """{name: tensor}: the parameters and the kept buffers, the names vamp_mpi writes."""
    return {**dict(model.named_parameters()), **kept_buffers(model)}


def check_names(model, arrays):
    """Problems between the model's parameters (and kept buffers) and a {name: array} dict, as three lists: names
    missing from the dict, names the model does not have, and (name, dict shape, model shape) for shape
    mismatches."""
    own = state_tensors(model)
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
        for k, p in state_tensors(model).items():
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


def importance_sampled(model, X, S, block, gen, progress=None):
    """Per-image importance-sampled log-likelihood log p(x) ~ logsumexp_s [-(re_s + kl_s)] - log S with z_s ~ q,
    and the ELBO averaged over the same S samples, for every row of X (N, D), as two float64 numpy arrays (N).
    Each image is encoded once; its samples go through the rest of the model in blocks of `block` rows; the
    prior's components are computed once. Noise from the torch generator gen. progress(i, N): called per image."""
    dt = next(model.parameters()).dtype
    zt, z1 = model.Ztop, model.Z1
    X = torch.as_tensor(np.asarray(X), dtype=dt)
    ll, elbo = np.empty(X.shape[0]), np.empty(X.shape[0])
    with torch.no_grad():
        comps = model.prior_components()
        for i in range(X.shape[0]):
            x = X[i:i + 1]
            enc = model.encode(x)
            w = []
            for s0 in range(0, S, block):
                b = min(block, S - s0)
                e_top = torch.randn(b, zt, generator=gen, dtype=dt)
                e1 = torch.randn(b, z1, generator=gen, dtype=dt) if model.hvae else None
                re, kl = model.loss_terms(x, e_top, e1, enc=enc, comps=comps)
                w.append(-(re + kl).double())
            w = torch.cat(w)
            ll[i] = float(torch.logsumexp(w, 0)) - math.log(S)
            elbo[i] = float(w.mean())
            if progress is not None:
                progress(i + 1, X.shape[0])
    return ll, elbo
