#!/usr/bin/python3
"""The same training step in PyTorch (tests/reference/vamp_ref.py, Debian's CPU torch): what a PyTorch user would
run instead of vamp_mpi. ms per step at a global batch of 100, for one process with T intra-op threads, or for
DistributedDataParallel over gloo with P processes of one thread each, the batch split between them (--ddp P).
The step is the reference's: loss, backward, the per-tensor gradient normalisation of its AdamNormGrad, Adam.

usage: bench_torch.py [--steps N] [--threads T | --ddp P] [--models vae_standard,vae_vampprior,hvae_vampprior]
                      [--malloc kept|glibc]
(also convhvae_* and pixelhvae_* on 28x28 images; under DDP each process's BatchNorm normalises with its own share
of the batch, torch's default)
--malloc kept (the default) keeps freed memory in the process (see keep_freed_memory in tests/reference/vamp_ref.py);
glibc leaves glibc's defaults, under which the step is up to 3x slower here.
Prints one line per model: "<model> torch step ms <ms> peak_rss_mib <MiB>" (the peak resident memory of one
process; under --ddp the largest over the processes).
"""
import argparse
import os
import resource
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from vamp_ref import keep_freed_memory, make_model  # noqa: E402

MODELS = ("vae_standard", "vae_vampprior", "hvae_vampprior")
BATCH, D, H, Z, K = 100, 784, 300, 40, 500


class LossTerms(torch.nn.Module):
    """The model's per-row (re, kl) as a module's forward, so that DDP's gradient hooks see the whole step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, eps_top, eps1):
        return self.model.loss_terms(x, eps_top, eps1)


def step_time(name, steps, rank=0, world=1):
    """Seconds per training step of model `name` on this process's share of the batch (DDP when world > 1)."""
    model_type, prior = name.split("_", 1)
    torch.manual_seed(0)
    m = make_model(model_type, "bernoulli", prior, D, H, Z, Z, K, 28, 28)  # convhvae, pixelhvae: 28x28 images
    terms = LossTerms(m)
    if world > 1:  # averages the gradients over the processes: the mean over the global batch
        terms = torch.nn.parallel.DistributedDataParallel(terms)
    opt = torch.optim.Adam(m.parameters(), lr=5e-4)
    rows = BATCH // world
    g = torch.Generator().manual_seed(rank)
    x = (torch.rand(rows, D, generator=g) < 0.3).float()

    def one():
        eps_top = torch.randn(rows, Z, generator=g)
        eps1 = torch.randn(rows, Z, generator=g) if model_type != "vae" else None
        re, kl = terms(x, eps_top, eps1)
        loss = torch.mean(re + kl)
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():  # the reference's per-tensor gradient normalisation (AdamNormGrad)
            for p in m.parameters():
                p.grad /= p.grad.norm() + 1e-7
        opt.step()

    for _ in range(3):
        one()
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if world > 1:
        dist.barrier()
    return (time.perf_counter() - t0) / steps


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ddp_worker(rank, world, models, steps, port, out, keep):
    if keep:
        keep_freed_memory()
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for name in models:
        t = torch.tensor([step_time(name, steps, rank, world), peak_rss_mib()], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the step waits for the slowest process
        if rank == 0:
            out.put((name, float(t[0]), float(t[1])))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ddp", type=int, default=0, help="DistributedDataParallel with this many processes")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--port", type=int, default=29511)
    ap.add_argument("--malloc", choices=("kept", "glibc"), default="kept")
    a = ap.parse_args()
    keep = a.malloc == "kept"
    models = a.models.split(",")
    known = [f"{m}_{p}" for m in ("vae", "hvae", "convhvae", "pixelhvae") for p in ("standard", "vampprior")]
    if any(n not in known for n in models):
        sys.exit(f"bench_torch.py: --models takes a list of {','.join(known)}")
    if a.ddp > 1:
        print(f"PyTorch {torch.__version__}, DDP (gloo) {a.ddp} processes x 1 thread, global batch {BATCH}, K = {K}, "
              f"malloc {a.malloc}")
        ctx = mp.get_context("spawn")
        out = ctx.SimpleQueue()
        mp.start_processes(ddp_worker, args=(a.ddp, models, a.steps, a.port, out, keep), nprocs=a.ddp, join=True,
                           start_method="spawn")
        while not out.empty():
            name, t, rss = out.get()
            print(f"{name:<15} torch step ms {1e3 * t:8.2f} peak_rss_mib {rss:6.0f}")
        return
    if keep:
        keep_freed_memory()
    torch.set_num_threads(a.threads)
    print(f"PyTorch {torch.__version__}, {a.threads} thread(s), batch {BATCH}, K = {K}, malloc {a.malloc}")
    for name in models:
        t = step_time(name, a.steps)
        print(f"{name:<15} torch step ms {1e3 * t:8.2f} peak_rss_mib {peak_rss_mib():6.0f}")


if __name__ == "__main__":
    main()
