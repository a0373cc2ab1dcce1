#!/usr/bin/python3
"""Summary of analysis/bench.sh's repetitions: per model the median and range over repetitions of every figure,
ratios taken within one repetition (both sides measured minutes apart on the same machine), and the targets of
docs/performance.md beside them. Reads DIR/rep<N>/{vamp1,vamp1s1,vamp1t2,vamp2,torch1,torch2,ddp2}.txt.

usage: bench_summary.py DIR
"""
import glob
import os
import re
import statistics
import sys

# figure -> target (a ratio: higher is better), from issue 18 / docs/performance.md; a pair is (VampPrior models,
# every other model)
TARGETS = {
    "torch_ratio": (2.0, 1.5),
    "ddp_ratio": (3.0, 1.5),
    "speedup": 1.85,
    "peak": 75.0,
    "peak_s1": 85.0,
    "is_peak": 70.0,
    "reduce_share": 8.0,  # at most
}


def read_vamp(path):
    """{model: {"step": ms, "reduce": ms, "peak": %, "is_peak": %}} of the exact rows; "_rss": MiB."""
    out, model = {}, None
    for line in open(path):
        f = line.split()
        if len(f) >= 10 and f[1] == "exact":
            model = f[0]
            out[model] = {"step": float(f[2]), "reduce": float(f[6]), "peak": float(f[9].rstrip("%"))}
        elif len(f) >= 2 and f[1] in ("exact", "fast"):
            model = None
        m = re.search(r"IS log-likelihood.*\(([\d.]+)% of peak\)", line)
        if m and model:
            out[model]["is_peak"] = float(m.group(1))
        m = re.match(r"peak resident memory per rank: (\d+) MiB", line)
        if m:
            out["_rss"] = float(m.group(1))
    return out


def read_torch(path):
    out = {}
    for line in open(path):
        m = re.match(r"(\S+)\s+torch step ms\s+([\d.]+) peak_rss_mib\s+([\d.]+)", line)
        if m:
            out[m.group(1)] = {"step": float(m.group(2)), "rss": float(m.group(3))}
    return out


def fmt(values, unit="", digits=1):
    """median [min-max] of a list of numbers."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def collect(root):
    reps = sorted(glob.glob(os.path.join(root, "rep*")))
    if not reps:
        sys.exit(f"bench_summary.py: no {root}/rep*/ directories")
    data = []
    for r in reps:
        rd = lambda n, f: f(os.path.join(r, n)) if os.path.exists(os.path.join(r, n)) else {}
        data.append({"v1": rd("vamp1.txt", read_vamp), "v1s1": rd("vamp1s1.txt", read_vamp),
                     "v1t2": rd("vamp1t2.txt", read_vamp), "v2": rd("vamp2.txt", read_vamp),
                     "t1": rd("torch1.txt", read_torch), "t2": rd("torch2.txt", read_torch),
                     "ddp": rd("ddp2.txt", read_torch)})
    return data


def series(data, fn):
    """fn(rep) for every repetition where all its inputs exist."""
    out = []
    for d in data:
        try:
            out.append(fn(d))
        except (KeyError, ValueError):  # a figure missing from this repetition (an interrupted run)
            pass
    return out


def target(name, model=None):
    t = TARGETS[name]
    if isinstance(t, tuple):
        return t[0] if "vampprior" in model else t[1]
    return t


def model_lines(data, m):
    s = lambda fn: series(data, fn)
    one, two = s(lambda d: d["v1"][m]["step"]), s(lambda d: d["v2"][m]["step"])
    speed = s(lambda d: d["v1"][m]["step"] / d["v2"][m]["step"])
    t1 = s(lambda d: d["t1"][m]["step"])
    r1 = s(lambda d: d["t1"][m]["step"] / d["v1"][m]["step"])
    t2 = s(lambda d: d["t2"][m]["step"])
    r2 = s(lambda d: d["t2"][m]["step"] / d["v2"][m]["step"])
    dd = s(lambda d: d["ddp"][m]["step"])
    rd = s(lambda d: d["ddp"][m]["step"] / d["v2"][m]["step"])
    hyb = s(lambda d: d["v1t2"][m]["step"])
    rh = s(lambda d: d["v1t2"][m]["step"] / d["v2"][m]["step"])
    # the whole node (both cores) as each side would best use it: PyTorch's fastest of 1 thread, 2 threads and DDP;
    # vamp_mpi's fastest of 1 rank, 2 ranks and 1 rank x 2 OpenBLAS threads
    torch_ways = {"torch 1 thread": "t1", "torch 2 threads": "t2", "DDP": "ddp"}
    vamp_ways = {"1 rank": "v1", "2 ranks": "v2", "hybrid": "v1t2"}
    best = lambda d, ways: min((d[k][m]["step"], name) for name, k in ways.items())
    node = s(lambda d: (best(d, torch_ways), best(d, vamp_ways)))
    rn = [t[0] / v[0] for t, v in node]
    which = lambda i: "/".join(sorted({w[i][1] for w in node}))
    med = lambda v: f"{statistics.median(v):.2f}" if v else "n/a"
    yield (f"{m:<15} speed-up {med(speed)}  torch {med(t1)} ms ({med(r1)}x)  DDP {med(dd)} ms ({med(rd)}x)  "
           f"node {med(rn)}x  1 rank {med(one)} ms  2 ranks {med(two)} ms")
    yield f"    1 rank {fmt(one, ' ms', 2)}; 2 ranks {fmt(two, ' ms', 2)}; speed-up {fmt(speed, '', 2)} " \
          f"(target >= {target('speedup')})"
    yield f"    torch 1 thread {fmt(t1, ' ms', 2)}: vamp_mpi 1 rank {fmt(r1, 'x', 2)} faster " \
          f"(target >= {target('torch_ratio', m)}x)"
    one_s1 = s(lambda d: d["v1s1"][m]["step"])
    r1s1 = s(lambda d: d["t1"][m]["step"] / d["v1s1"][m]["step"])
    yield f"    1 rank with data.stripes = 1 {fmt(one_s1, ' ms', 2)}: {fmt(r1s1, 'x', 2)} faster than torch 1 thread"
    yield f"    torch 2 threads {fmt(t2, ' ms', 2)}: vamp_mpi 2 ranks {fmt(r2, 'x', 2)} faster"
    yield f"    DDP 2 processes {fmt(dd, ' ms', 2)}: vamp_mpi 2 ranks {fmt(rd, 'x', 2)} faster " \
          f"(target >= {target('ddp_ratio', m)}x)"
    yield f"    the node, each side's fastest way: PyTorch {fmt([t[0] for t, _ in node], ' ms', 2)} ({which(0)}), " \
          f"vamp_mpi {fmt([v[0] for _, v in node], ' ms', 2)} ({which(1)}): vamp_mpi {fmt(rn, 'x', 2)} faster"
    yield f"    hybrid 1 rank x 2 OpenBLAS threads {fmt(hyb, ' ms', 2)}: {fmt(rh, 'x', 2)} the time of 2 ranks x 1"
    pk = s(lambda d: d["v1"][m]["peak"])
    pk1 = s(lambda d: d["v1s1"][m]["peak"])
    red = s(lambda d: 100.0 * d["v1"][m]["reduce"] / d["v1"][m]["step"])
    isp = s(lambda d: d["v1"][m]["is_peak"])
    yield f"    1 rank: {fmt(pk, '%')} of the sgemm peak (target >= {target('peak')}%), data.stripes = 1: " \
          f"{fmt(pk1, '%')} (target >= {target('peak_s1')}%); exact reduction {fmt(red, '%')} of the step " \
          f"(target <= {target('reduce_share')}%); IS log-likelihood {fmt(isp, '%')} of peak " \
          f"(target >= {target('is_peak')}%)"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = collect(sys.argv[1])
    print(f"== summary over {len(data)} repetition(s): median [min-max]; a ratio is taken within one repetition "
          "(torch / vamp_mpi: above 1 means vamp_mpi is faster)")
    models = [m for m in ("vae_standard", "vae_vampprior", "hvae_vampprior") if series(data, lambda d: d["v1"][m])]
    models += sorted({m for d in data for m in d["v1"] if not m.startswith("_") and m not in models})
    for m in models:
        for line in model_lines(data, m):
            print(line)
    rss = lambda k: series(data, lambda d: d[k]["_rss"])
    trss = lambda k: series(data, lambda d: max(v["rss"] for v in d[k].values()))
    print(f"peak resident memory per process: vamp_mpi 1 rank {fmt(rss('v1'), ' MiB', 0)}, 2 ranks "
          f"{fmt(rss('v2'), ' MiB', 0)}; torch 1 thread {fmt(trss('t1'), ' MiB', 0)}, DDP "
          f"{fmt(trss('ddp'), ' MiB', 0)}")


if __name__ == "__main__":
    main()
