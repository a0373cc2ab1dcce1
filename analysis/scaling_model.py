#!/usr/bin/python3
"""Projected step time and parallel efficiency of vamp_mpi for P = 1..256 ranks, with and without sharding of
the pseudo-input work, from figures measured by vamp_bench (run by analysis/bench.sh):

  compute  the 1-rank phase times of one model (prior = the K pseudo-input encodings forward and backward,
           forward + backward of the data chunks, the local part of the reduction, the optimiser);
  network  MPI_Allreduce times of doubles from 8 B to 32 MB on 2 ranks, fitted to T(n) = 2 alpha + n beta
           (a ring / Rabenseifner allreduce on P = 2), so alpha is the per-message latency and beta the time
           per byte.

Efficiency = (time of the same batch on one rank, 4 stripes) / (P x time on P ranks). Strong scaling lists
the P that divide the batch (S = max(4, P) stripes, which must divide the batch; analysis/stripe_balance.py has
the imbalance when P does not divide S); weak scaling P = 1, 2, .., 256.
Model of one step on P ranks (global batch B, S = max(4, P) stripes, so every rank has S / P chunks):
  data     (forward + backward) * (B / P) / B_measured          per-sample GEMM work, split over ranks
  prior    prior / P (sharded)  or  prior (every rank encodes all K pseudo-inputs)
  reduce   rounding S chunks of the N / P owned elements (or S / P local chunks of all N): reduce_1 / S_measured
           * S / P
  optim    each rank updates the tensors it owns: optim / P
  comm     S / P <= 2 chunks per rank (always, with S = max(4, P) and P >= 2): each chunk's slices sent to
           their owners, S / P times ((P - 1) alpha + (P - 1) / P * 4 N beta); otherwise a reduce-scatter of the
           N gradient doubles, log2(P) alpha + (P - 1) / P * 8 N beta. Then the allgather of the N float
           parameters, log2(P) alpha + (P - 1) / P * 4 N beta, and two latency-only collectives; sharded also
           allgathers the K x Z means and log-variances (log2(P) alpha + (P - 1) / P * 8 K Z beta) and reduces
           their gradient exactly (an allreduce of 2 K Z doubles). The pixelhvae's BatchNorm adds 16 allgathers
           (8 layers, forward and backward) of every chunk's 129 partial sums in double: S x 129 x 8 bytes each.
No overlap of communication and computation is assumed (vamp_mpi does not overlap them). The loopback alpha
and beta are shared-memory figures; --alpha-us / --beta-gbs project a network instead.

usage: analysis/scaling_model.py BENCH_1RANK.txt BENCH_2RANKS.txt [--model hvae_vampprior] [--batch 100]
                                 [--alpha-us A] [--beta-gbs G] [--plot scaling.png]
"""
import argparse
import math
import sys

MEASURED_STRIPES = 4   # vamp_bench's data.stripes
MEASURED_BATCH = 100   # vamp_bench's train.batch_size
K, Z = 500, 40         # pseudo-inputs, top latent size (vamp_bench's models)
MODELS = ("vae_standard", "vae_vampprior", "hvae_vampprior", "convhvae_standard", "convhvae_vampprior",
          "pixelhvae_standard", "pixelhvae_vampprior")
BN_SYNCS, BN_PARTIAL = 16, 129  # pixelhvae: allgathers per step, doubles per chunk in each


def read_phases(path, model):
    """1-rank phase times (ms) of `model` with exact reduction, and its parameter count, from vamp_bench."""
    ph = None
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) >= 8 and w[0] == model and w[1] == "exact":
                step, prior, fwd, bwd, red, opt = (float(x) for x in w[2:8])
                ph = {"step": step, "prior": prior, "data": fwd + bwd, "reduce": red, "optim": opt}
            if ph is not None and "params" not in ph and "parameters" in w:
                ph["params"] = int(w[w.index("parameters") - 1])
    if ph is None or "params" not in ph:
        sys.exit(f"{path}: no 'exact' line and parameter count for model {model} (vamp_bench output on 1 rank?)")
    return ph


def fit_alpha_beta(path):
    """Least squares of T = 2 alpha + n beta over the 'allreduce 2 BYTES US' lines, relative errors."""
    pts = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) == 4 and w[0] == "allreduce" and w[1] == "2":
                pts.append((float(w[2]), float(w[3]) * 1e-6))
    if len(pts) < 3:
        sys.exit(f"{path}: needs 'allreduce 2 BYTES US' lines (vamp_bench on 2 ranks)")
    # weighted by 1/T^2: minimise sum ((a + b n - T) / T)^2, a = 2 alpha
    s00 = sum(1 / t**2 for n, t in pts)
    s01 = sum(n / t**2 for n, t in pts)
    s11 = sum(n * n / t**2 for n, t in pts)
    r0 = sum(1 / t for n, t in pts)
    r1 = sum(n / t for n, t in pts)
    det = s00 * s11 - s01 * s01
    a = (r0 * s11 - r1 * s01) / det
    b = (s00 * r1 - s01 * r0) / det
    return max(a / 2, 0.0), b, pts


def allreduce(P, nbytes, alpha, beta):
    if P == 1:
        return 0.0
    return 2 * math.log2(P) * alpha + 2 * (P - 1) / P * nbytes * beta


def allgather(P, nbytes, alpha, beta):
    if P == 1:
        return 0.0
    return math.log2(P) * alpha + (P - 1) / P * nbytes * beta


def reduce_scatter(P, nbytes, alpha, beta):
    return allgather(P, nbytes, alpha, beta)


def alltoall(P, nbytes, alpha, beta):
    """Each rank sends (P - 1) / P of nbytes, one message to each other rank."""
    if P == 1:
        return 0.0
    return (P - 1) * alpha + (P - 1) / P * nbytes * beta


def step_ms(ph, nparams, P, batch, sharded, alpha, beta, model, S=None):
    vamp, pixel = "vampprior" in model, model.startswith("pixelhvae")
    S = S or max(MEASURED_STRIPES, P)
    data = ph["data"] * (batch / P) / MEASURED_BATCH
    prior = ph["prior"] / P if sharded else ph["prior"]
    reduce_local = ph["reduce"] / MEASURED_STRIPES * (S / P)
    nlocal = S // P
    if nlocal <= 2:  # the owner path: float chunks to their owners
        move = nlocal * alltoall(P, 4 * nparams, alpha, beta)
    else:            # grid sums reduce-scattered
        move = reduce_scatter(P, 8 * nparams, alpha, beta)
    comm = move + allgather(P, 4 * nparams, alpha, beta) + (2 * math.log2(P) * alpha if P > 1 else 0.0)
    if vamp and sharded:
        comm += allgather(P, 2 * 4 * K * Z, alpha, beta) + allreduce(P, 2 * 8 * K * Z, alpha, beta)
    if pixel:
        comm += BN_SYNCS * allgather(P, S * BN_PARTIAL * 8, alpha, beta)
    return data + prior + reduce_local + ph["optim"] / P + comm * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench1")
    ap.add_argument("bench2")
    ap.add_argument("--model", default="hvae_vampprior", choices=MODELS)
    ap.add_argument("--batch", type=int, default=100, help="global batch of the strong-scaling projection")
    ap.add_argument("--alpha-us", type=float, help="latency per message, microseconds (default: fitted)")
    ap.add_argument("--beta-gbs", type=float, help="bandwidth, GB/s (default: fitted)")
    ap.add_argument("--plot", help="write the plot to this PNG file")
    a = ap.parse_args()

    ph = read_phases(a.bench1, a.model)
    ph2 = read_phases(a.bench2, a.model)
    alpha, beta, pts = fit_alpha_beta(a.bench2)
    print(f"loopback allreduce on 2 ranks ({len(pts)} sizes, 8 B .. {pts[-1][0] / 1e6:.0f} MB): "
          f"alpha = {alpha * 1e6:.2f} us, beta = {beta * 1e9:.3f} ns/B ({1 / beta / 1e9:.2f} GB/s)")
    for n, t in pts:
        print(f"  {n:>10.0f} B  measured {t * 1e6:9.1f} us  model {(2 * alpha + n * beta) * 1e6:9.1f} us")
    if a.alpha_us is not None:
        alpha = a.alpha_us * 1e-6
    if a.beta_gbs is not None:
        beta = 1 / (a.beta_gbs * 1e9)
    print(f"projection with alpha = {alpha * 1e6:.2f} us, beta = {1 / beta / 1e9:.2f} GB/s; {a.model}, "
          f"{ph['params']} parameters, 1-rank phases (ms): prior {ph['prior']:.2f}, forward + backward "
          f"{ph['data']:.2f}, reduce {ph['reduce']:.2f}, optim {ph['optim']:.2f}")
    N = ph["params"]
    print(f"check on 2 ranks, batch {MEASURED_BATCH}: model {step_ms(ph, N, 2, MEASURED_BATCH, True, alpha, beta, a.model):.2f} ms, "
          f"measured {ph2['step']:.2f} ms (the model leaves out the memory bandwidth the two ranks share)")
    weak_Ps = [2**i for i in range(9)]
    strong_Ps = [p for p in range(1, 257) if a.batch % p == 0]
    rows = {}
    for label, batch_of in (("strong", lambda P: a.batch), ("weak", lambda P: MEASURED_BATCH * P)):
        print(f"\n{label} scaling ({'global batch %d' % a.batch if label == 'strong' else '100 images per rank'}):")
        print(f"{'P':>5} {'sharded ms':>11} {'eff':>6} {'replicated ms':>14} {'eff':>6}")
        rows[label] = []
        for P in strong_Ps if label == "strong" else weak_Ps:
            b = batch_of(P)
            ts = step_ms(ph, N, P, b, True, alpha, beta, a.model)
            tr = step_ms(ph, N, P, b, False, alpha, beta, a.model)
            # efficiency = speed-up over one rank doing the same batch (with the measured 4 stripes) / P
            ideal = step_ms(ph, N, 1, b, True, alpha, beta, a.model) / P
            es, er = ideal / ts, ideal / tr
            rows[label].append((P, ts, es, tr, er))
            print(f"{P:>5} {ts:>11.2f} {es:>6.2f} {tr:>14.2f} {er:>6.2f}")
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, label in zip(axes, ("strong", "weak")):
            r = rows[label]
            ax.plot([x[0] for x in r], [x[2] for x in r], "o-", label="pseudo-inputs sharded")
            ax.plot([x[0] for x in r], [x[4] for x in r], "s--", label="pseudo-inputs on every rank")
            ax.set_xscale("log", base=2)
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("ranks P")
            ax.set_ylabel("parallel efficiency")
            ax.set_title(f"{a.model}: {label} scaling"
                         + (f" (batch {a.batch})" if label == "strong" else " (100 per rank)"))
            ax.grid(alpha=0.3)
            ax.legend()
        fig.text(0.5, 0.01, f"allreduce alpha = {alpha * 1e6:.1f} us, bandwidth {1 / beta / 1e9:.1f} GB/s",
                 ha="center", fontsize=8)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(a.plot, dpi=100)
        print(f"\nplot: {a.plot}")


if __name__ == "__main__":
    main()
