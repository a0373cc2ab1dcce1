#!/usr/bin/python3
"""vamp_mpi and the independent PyTorch trainer (tests/reference/train_ref.py) side by side: the same presets
and seeds trained by both, then a table of the test log-likelihood (mean and seed-to-seed spread per trainer)
and the validation learning curves of every run.

usage: side_by_side.py --root DIR --presets P.ini [P.ini...] [--seeds 1 2 3] [--set section.key=value ...]
                       [--collect-only] [--trainers vamp torch] [--np 2] [--threads 1] [--png F]

Run from the repository root (the presets' data paths are relative to it). For each preset and seed k:
  vamp_mpi: mpirun -np NP build/vamp_mpi P.ini --set run.dir=ROOT/vamp/<name>/seed<k> --set run.seed=k [--set ...]
  torch:    train_ref.py P.ini --out ROOT/torch/<name>/seed<k> --seed k --threads T [--set ...]
where <name> is the preset's directory and file name (frey_vae_vampprior). A run whose results exist
(final.h5, results.json) is skipped, so the script can be re-run to continue or to collect; an interrupted
vamp_mpi run resumes from its checkpoint, an interrupted torch run from its state.pt (saved after every
epoch). Logs go to ROOT/logs/.
The --set list is recorded in ROOT/side_by_side.json on the first run; another list needs another root.
--collect-only runs nothing; --trainers vamp (or torch) runs one trainer only, so that two instances of the
script on the same root can run the two trainers at once, one core each (--np 1); two instances running the
same trainer need disjoint --presets. Prints a markdown table (also ROOT/side_by_side.md) and writes the learning
curves to ROOT/side_by_side.png (or --png). Exit status 1 if a run failed, 2 on bad arguments.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_REF = os.path.join(REPO, "tests", "reference", "train_ref.py")
TRAINERS = ("vamp", "torch")
LABEL = {"vamp": "vamp_mpi", "torch": "torch"}


def usage_error(msg):
    print(f"side_by_side.py: {msg}", file=sys.stderr)
    sys.exit(2)


def preset_name(path):
    return f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}_{os.path.splitext(os.path.basename(path))[0]}"


def run_dir(root, trainer, name, seed):
    return os.path.join(root, trainer, name, f"seed{seed}")


def done(trainer, d):
    return os.path.exists(os.path.join(d, "final.h5" if trainer == "vamp" else "results.json"))


def run_one(cmd, log, env):
    """Runs cmd with its output appended to log; returns its exit status."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)


def read_curve(path):
    """{epoch: val_loss} from a metrics.csv (the last row of an epoch wins: a resumed run may repeat one)."""
    if not os.path.exists(path):
        return {}
    return {int(r["epoch"]): float(r["val_loss"]) for r in csv.DictReader(open(path))}


def collect(trainer, d):
    """A run's results as a dict (test_ll, test_ll_se, test_elbo, active_units_z1/z2, epochs, best_epoch,
    train_seconds, curve), or None if it has none yet."""
    if not done(trainer, d):
        return None
    if trainer == "vamp":
        f = h5py.File(os.path.join(d, "final.h5"), "r")
        r = {k: float(f.attrs[k]) for k in ("test_ll", "test_elbo", "test_re", "test_kl", "active_units_z1",
                                           "active_units_z2", "epochs", "best_epoch", "train_seconds")}
        r["per_image"] = np.array(f["eval/test_ll"], np.float64) if "eval/test_ll" in f else None
        ll = r["per_image"]
        r["test_ll_se"] = float(ll.std(ddof=1) / math.sqrt(len(ll))) if ll is not None and len(ll) > 1 else math.nan
    else:
        r = json.load(open(os.path.join(d, "results.json")))
        r = {k: math.nan if v is None else v for k, v in r.items()}
        npy = os.path.join(d, "test_ll.npy")
        r["per_image"] = np.load(npy) if os.path.exists(npy) else None
    r["curve"] = read_curve(os.path.join(d, "metrics.csv"))
    return r


def mean_sd(v):
    v = [x for x in v if math.isfinite(x)]
    if not v:
        return math.nan, math.nan, 0
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan, len(v)


def fmt(x, spec=".2f"):
    return "–" if x is None or not math.isfinite(x) else format(x, spec)


def table(results, presets, seeds):
    """The markdown table: per preset one row per trainer and one for the difference of the means."""
    out = ["| preset | trainer | test LL: mean ± sd over seeds | per seed: LL ± SE over test images (epochs / best) "
           "| test ELBO | AU z1 / z2 | train min |",
           "|---|---|---|---|---|---|---|"]
    for name in presets:
        stats = {}
        for tr in TRAINERS:
            rs = [(k, results[(tr, name, k)]) for k in seeds if results.get((tr, name, k))]
            ll = [r["test_ll"] for _, r in rs]
            stats[tr] = (mean_sd(ll), [r["per_image"] for _, r in rs])
            m, sd, n = stats[tr][0]
            per = ", ".join(f"s{k}: {fmt(r['test_ll'])} ± {fmt(r['test_ll_se'])} ({int(r['epochs'])} / "
                            f"{int(r['best_epoch'])})" for k, r in rs) or "no results"
            elbo = mean_sd([r["test_elbo"] for _, r in rs])[0]
            au = " ".join(f"{int(r['active_units_z1'])}/{int(r['active_units_z2'])}" for _, r in rs)
            mins = mean_sd([r["train_seconds"] / 60 for _, r in rs])[0]
            out.append(f"| {name} | {LABEL[tr]} | {fmt(m)} ± {fmt(sd)} (n = {n}) | {per} | {fmt(elbo)} "
                       f"| {au or '–'} | {fmt(mins, '.1f')} |")
        (mv, sv, nv), pv = stats["vamp"]
        (mt, st, nt), pt = stats["torch"]
        diff = mv - mt
        se, what = math.nan, ""
        if nv > 1 and nt > 1:  # the standard error of a difference of two means, from the seed-to-seed spread
            se, what = math.sqrt(sv ** 2 / nv + st ** 2 / nt), "seeds"
        elif nv == 1 and nt == 1 and pv[0] is not None and pt[0] is not None and len(pv[0]) == len(pt[0]) > 1:
            d = pv[0] - pt[0]  # one seed each: the paired test-image error only (same images, same order)
            se, what = float(d.std(ddof=1) / math.sqrt(len(d))), "one seed: paired test images only"
        if math.isfinite(diff) and math.isfinite(se) and se > 0:
            verdict = (f"{'**exceeds**' if abs(diff) > 2 * se else 'within'} the spread: abs(Δ) / SE(Δ) = "
                       f"{abs(diff) / se:.1f} (SE(Δ) = {se:.2f}, {what})")
        else:
            verdict = "–"
        out.append(f"| {name} | Δ vamp_mpi − torch | {fmt(diff, '+.2f')} | {verdict} | | | |")
    out += ["", "LL in nats per test image (higher is better); SE(Δ) = sqrt(sd_vamp²/n_vamp + sd_torch²/n_torch) "
            "from the seed-to-seed standard deviations (with one seed per trainer: the standard error of the mean "
            "per-image difference, which leaves out the seed-to-seed variation); a difference exceeds the spread "
            "when abs(Δ) > 2 SE(Δ)."]
    return "\n".join(out)


def plot(results, presets, seeds, path):
    n = len(presets)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    style = {"vamp": ("C0", "-"), "torch": ("C3", "--")}
    for i, name in enumerate(presets):
        ax = axes[i // cols][i % cols]
        vals = []
        for tr in TRAINERS:
            colour, ls = style[tr]
            for j, k in enumerate(seeds):
                r = results.get((tr, name, k))
                # a run still going or failed has no results yet: plot its curve so far
                c = r["curve"] if r else read_curve(os.path.join(run_dir(results["root"], tr, name, k), "metrics.csv"))
                if not c:
                    continue
                ep = sorted(c)
                ax.plot(ep, [c[e] for e in ep], ls, color=colour, alpha=0.85, lw=1.2,
                        label=f"{LABEL[tr]}" if j == 0 else None)
                if r and int(r["best_epoch"]) in c:
                    ax.plot([int(r["best_epoch"])], [c[int(r["best_epoch"])]], "o", color=colour, ms=4)
                vals += [(e, c[e]) for e in ep]
        if vals:  # leave out the first epochs' large losses when there are many epochs
            last = max(e for e, _ in vals)
            keep = [v for e, v in vals if last <= 10 or e >= max(2, 0.05 * last)]
            lo, hi = min(keep), max(keep)
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            ax.set_ylim(lo - pad, hi + pad)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=9)
        ax.set(xlabel="epoch", ylabel="validation loss (nats / image)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title=f"seeds {' '.join(map(str, seeds))}; dot: best", title_fontsize=7)
    for i in range(n, rows * cols):
        axes[i // cols][i % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--root", required=True, help="directory for all runs (outside the repository)")
    ap.add_argument("--presets", nargs="+", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--set", action="append", default=[], metavar="section.key=value",
                    help="given to both trainers (repeatable)")
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS), help="which to run")
    ap.add_argument("--np", type=int, default=2, help="vamp_mpi ranks (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--vamp", default=os.path.join(REPO, "build", "vamp_mpi"))
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--png", help="learning curves (default ROOT/side_by_side.png)")
    a = ap.parse_args()

    root = os.path.realpath(a.root)
    if root == REPO or root.startswith(REPO + os.sep):
        usage_error(f"--root {a.root} is inside the repository {REPO}: choose a directory outside it")
    for s in a.set:
        key = s.partition("=")[0].strip()
        if "=" not in s or "." not in key:
            usage_error(f"--set {s}: expected section.key=value")
        if key in ("run.dir", "run.seed"):
            usage_error(f"--set {s}: {key} is set per run by this script")
    for p in a.presets:
        if not os.path.isfile(p):
            usage_error(f"preset {p}: no such file")
    names = [preset_name(p) for p in a.presets]
    if len(set(names)) != len(names):
        usage_error("two presets have the same name: " + " ".join(names))
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    record = os.path.join(root, "side_by_side.json")
    if os.path.exists(record):
        old = json.load(open(record))["set"]
        if old != a.set and not a.collect_only:
            usage_error(f"{root} holds runs made with --set {old}; now {a.set}: use another --root")
    elif not a.collect_only:
        json.dump({"set": a.set}, open(record, "w"))

    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
    if os.geteuid() == 0:  # Open MPI refuses root without these
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    sets = [x for s in a.set for x in ("--set", s)]
    failed = []
    for p, name in zip(a.presets, names):
        for k in a.seeds:
            for tr in TRAINERS:
                d = run_dir(root, tr, name, k)
                if a.collect_only or tr not in a.trainers or done(tr, d):
                    continue
                if tr == "vamp":
                    cmd = [a.mpirun, "-np", str(a.np)] + (["--oversubscribe"] if a.np > (os.cpu_count() or 1) else [])
                    cmd += [a.vamp, p, "--set", f"run.dir={d}", "--set", f"run.seed={k}"] + sets
                else:
                    cmd = [sys.executable, TRAIN_REF, p, "--out", d, "--seed", str(k), "--threads", str(a.threads)]
                    cmd += sets
                log = os.path.join(root, "logs", f"{tr}_{name}_seed{k}.log")
                print(f"running {LABEL[tr]} {name} seed {k} (log {log})", flush=True)
                try:
                    rc = run_one(cmd, log, env)
                except KeyboardInterrupt:
                    sys.exit("side_by_side.py: interrupted; run it again to continue")
                if rc != 0 or not done(tr, d):
                    print(f"  FAILED with exit status {rc}: see {log}", flush=True)
                    failed.append(f"{LABEL[tr]} {name} seed {k}")

    results = {"root": root}
    for name in names:
        for k in a.seeds:
            for tr in TRAINERS:
                results[(tr, name, k)] = collect(tr, run_dir(root, tr, name, k))
    md = table(results, names, a.seeds)
    print(md)
    with open(os.path.join(root, "side_by_side.md"), "w") as f:
        f.write(md + "\n")
    png = a.png or os.path.join(root, "side_by_side.png")
    plot(results, names, a.seeds, png)
    print(f"\nwrote {os.path.join(root, 'side_by_side.md')} and {png}")
    if failed:
        print("failed: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
