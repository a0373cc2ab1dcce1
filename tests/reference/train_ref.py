#!/usr/bin/python3
"""An independent PyTorch trainer for vamp_mpi's presets, with the protocol of the paper's reference code
(jmtomczak/vae_vampprior: experiment.py, utils/training.py, utils/evaluation.py, utils/optimizer.py), to set
vamp_mpi's results side by side with it (analysis/side_by_side.py). The models are vamp_ref.py's.

usage: train_ref.py CONFIG.ini --out DIR [--seed N] [--set section.key=value ...] [--threads T]

Reads a vamp_mpi INI preset (same keys and defaults, configs/README.md; keys that only concern vamp_mpi's
parallel machinery or checkpoints are accepted and ignored) and its HDF5 dataset (uint8 scaled by 1/255 as
vamp_mpi does, or float32). Protocol: shuffled minibatches covering every training image each epoch (the last
one partial, as the reference's DataLoader), dynamic binarisation of training batches (data.binarize =
dynamic; valid/test binarised once with a fixed seed), KL warm-up beta = epoch / warmup capped at 1,
AdamNormGrad (Adam with per-tensor g / (||g|| + 1e-7), the reference's eps placement) or plain Adam, the
validation ELBO at beta = 1 after each epoch (the same noise every epoch, as vamp_mpi), early stopping after
train.patience epochs without improvement with the counter held at 0 during warm-up, the best-validation
parameters kept; at most train.epochs epochs. Then on the test set with the best parameters: ELBO, RE, KL,
active units (Cov_x E_q[z|x] > 0.01) and the importance-sampled log-likelihood with eval.samples samples
(x encoded once, samples in blocks of eval.block) with its standard error over test images.
It shares neither vamp_mpi's data order nor its noise: all randomness comes from torch generators seeded by
run.seed (--seed overrides it). Resumable: the training state is saved to DIR/state.pt after every epoch
(written to a temporary name, then renamed), and a second run with the same DIR and the same resolved config
continues from it, with the same bits as a run that was never interrupted (another config there is refused).

Writes DIR/config.ini (resolved), DIR/metrics.csv (vamp_mpi's columns), DIR/results.json, DIR/test_ll.npy
(per-image log-likelihoods). Results are reproducible for a given seed and thread count (--threads sets
both torch's threads and OpenBLAS's). Exit status 2 on a bad config, key, value or dataset, before writing
anything.
"""
import argparse
import configparser
import copy
import json
import math
import os
import sys
import time


def threads_arg(argv):
    """--threads T from the command line (default 1), read before torch loads: Debian's torch multiplies matrices
    with OpenBLAS, whose thread count is fixed when it loads and changes the results' last bits (and so, over
    many steps, the results): a run is reproducible for a given thread count."""
    for i, a in enumerate(argv):
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "1"


os.environ["OPENBLAS_NUM_THREADS"] = threads_arg(sys.argv[1:])
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vamp_ref import importance_sampled, keep_freed_memory, make_model  # noqa: E402

# Every key vamp_mpi knows, with its default (configs/README.md; tests/test_train_ref.sh checks them against
# the program). The trainer uses the ones named in USED; the others steer vamp_mpi's ranks and files only.
DEFAULTS = {
    "run": {"dir": "runs/default", "seed": "1", "peer_timeout": "600"},
    "data": {"path": "data/fashion_mnist.h5", "binarize": "dynamic", "stripes": "4", "train_limit": "0",
             "valid_limit": "0", "test_limit": "0"},
    "model": {"type": "hvae", "likelihood": "bernoulli", "hidden": "300", "z1": "40", "z2": "40"},
    "prior": {"type": "vampprior", "components": "500", "pseudo_mean": "0.05", "pseudo_std": "0.01"},
    "train": {"batch_size": "100", "epochs": "2000", "max_steps": "0", "lr": "0.0005", "warmup": "100",
              "optimizer": "adamnormgrad", "reduce": "exact", "patience": "50", "on_nan": "stop"},
    "eval": {"samples": "5000", "block": "500", "batch": "500", "pictures": "yes", "pictures_every": "0"},
    "checkpoint": {"every_steps": "0", "every_minutes": "30", "keep": "2"},
}
CHOICES = {("data", "binarize"): ("dynamic", "static", "none"), ("model", "type"): ("vae", "hvae", "convhvae", "pixelhvae"),
           ("model", "likelihood"): ("bernoulli", "logistic256"),
           ("prior", "type"): ("standard", "mog", "vampprior", "vampprior_data"),
           ("train", "optimizer"): ("adamnormgrad", "adam")}
INTS = {("run", "seed"), ("data", "train_limit"), ("data", "valid_limit"), ("data", "test_limit"),
        ("model", "hidden"), ("model", "z1"), ("model", "z2"), ("prior", "components"), ("train", "batch_size"),
        ("train", "epochs"), ("train", "max_steps"), ("train", "warmup"), ("train", "patience"),
        ("eval", "samples"), ("eval", "block"), ("eval", "batch")}
FLOATS = {("prior", "pseudo_mean"), ("prior", "pseudo_std"), ("train", "lr")}
STATIC_BINARIZE_SEED = 777  # valid/test (and data.binarize = static) binarised once, whatever run.seed
METRICS_HEADER = "epoch,step,beta,train_loss,train_re,train_kl,val_loss,val_re,val_kl,seconds,samples_per_s"


def input_error(msg):
    print(f"train_ref.py: {msg}", file=sys.stderr)
    sys.exit(2)


def read_config(path, sets, seed):
    """{section: {key: typed value}} from the INI file, the --set overrides and --seed, checked like vamp_mpi."""
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",), strict=False)
    try:
        with open(path) as f:
            cp.read_file(f)
    except (OSError, configparser.Error) as e:
        input_error(f"{path}: {e}")
    raw = {s: dict(k) for s, k in DEFAULTS.items()}
    given = [(s, k, v, path) for s in cp.sections() for k, v in cp[s].items()]
    for item in sets:
        sk, eq, v = item.partition("=")
        s, dot, k = sk.partition(".")
        if not eq or not dot:
            input_error(f"--set {item}: expected section.key=value")
        given.append((s, k, v, "--set"))
    for s, k, v, where in given:
        if s not in raw or k not in raw[s]:
            input_error(f"{where}: unknown key [{s}] {k}")
        raw[s][k] = v.strip()
    if seed is not None:
        raw["run"]["seed"] = str(seed)
    cfg = {s: {} for s in raw}
    for s, keys in raw.items():
        for k, v in keys.items():
            try:
                if (s, k) in INTS:
                    cfg[s][k] = int(v)
                    if cfg[s][k] < 0:
                        raise ValueError
                elif (s, k) in FLOATS:
                    cfg[s][k] = float(v)
                else:
                    cfg[s][k] = v
            except ValueError:
                input_error(f"{path}: [{s}] {k} = \"{v}\": expected a non-negative number")
            if (s, k) in CHOICES and v not in CHOICES[(s, k)]:
                input_error(f"{path}: [{s}] {k} = \"{v}\": expected one of {'|'.join(CHOICES[(s, k)])}")
    for s, k in (("model", "hidden"), ("model", "z1"), ("model", "z2"), ("prior", "components"),
                 ("train", "batch_size"), ("train", "epochs"), ("eval", "block"), ("eval", "batch")):
        if cfg[s][k] < 1:
            input_error(f"{path}: [{s}] {k} must be at least 1")
    if cfg["model"]["likelihood"] == "logistic256" and cfg["data"]["binarize"] != "none":
        input_error(f"{path}: [model] likelihood = logistic256 models grey levels: set [data] binarize = none")
    return cfg, raw


def load_split(f, path, name, limit):
    """A split as float32 (N, D) in [0, 1]: uint8 scaled by 1/255 in float32, as vamp_mpi's data.c does it."""
    if name not in f or f[name].ndim != 2:
        input_error(f"{path}: no 2-d dataset /{name}")
    d = f[name]
    n = d.shape[0] if limit == 0 else min(limit, d.shape[0])
    a = d[:n]
    if a.dtype == np.uint8:
        x = torch.from_numpy(a.astype(np.float32)) / 255.0
    elif a.dtype == np.float32:
        x = torch.from_numpy(np.ascontiguousarray(a))
    else:
        input_error(f"{path}: dataset /{name}: element type must be uint8 (0..255) or float32 (0..1)")
    if not bool(torch.all((x >= 0) & (x <= 1))):
        input_error(f"{path}: dataset /{name}: values outside [0, 1] (or NaN)")
    return x


def load_data(cfg):
    path, b = cfg["data"]["path"], cfg["data"]["binarize"]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        input_error(f"{path}: {e}")
    splits = {n: load_split(f, path, n, cfg["data"][f"{n}_limit"]) for n in ("train", "valid", "test")}
    if cfg["model"]["likelihood"] == "bernoulli" and b == "none":
        for n, x in splits.items():
            if not bool(torch.all((x == 0) | (x == 1))):
                input_error(f"{path}: dataset /{n}: data.binarize = none needs 0/1 data (use data.binarize = "
                            "dynamic or static)")
    raw_train = splits["train"]
    if b != "none":
        g = torch.Generator().manual_seed(STATIC_BINARIZE_SEED)
        for n in (("valid", "test", "train") if b == "static" else ("valid", "test")):
            splits[n] = torch.bernoulli(splits[n], generator=g)
    for n, x in splits.items():
        if x.shape[0] == 0:
            input_error(f"{path}: dataset /{n} has no rows")
    return splits, raw_train


class AdamNormGrad(torch.optim.Optimizer):
    """The reference's utils/optimizer.py: Adam with eps added to sqrt(v) and both bias corrections folded into
    the step size; with normalise, each tensor's gradient is first divided by its 2-norm + 1e-7."""

    def __init__(self, params, lr, normalise=True, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
        self.normalise = normalise

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if self.normalise:
                    g = g / (torch.norm(g, 2) + 1e-7)
                st = self.state[p]
                if not st:
                    st["step"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["step"] += 1
                st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                t = st["step"]
                step_size = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.addcdiv_(st["m"], st["v"].sqrt().add_(group["eps"]), value=-step_size)


def gen(seed, purpose):
    """An independent generator per purpose (0 init, 1 training stream, 2 validation, 3 test ELBO, 4 IS)."""
    return torch.Generator().manual_seed((seed * 8 + purpose) % (1 << 63))


def noise(model, rows, g):
    zt = model.Ztop
    e_top = torch.randn(rows, zt, generator=g)
    e1 = torch.randn(rows, model.Z1, generator=g) if model.hvae else None
    return e_top, e1


def eval_elbo(model, X, batch, g):
    """Mean per image of loss = re + kl (beta = 1), re and kl over X, one sample per image."""
    sre = skl = 0.0
    model.eval()  # BatchNorm (pixelhvae) with its running statistics, as the reference evaluates
    with torch.no_grad():
        comps = model.prior_components()
        for r0 in range(0, X.shape[0], batch):
            x = X[r0:r0 + batch]
            re, kl = model.loss_terms(x, *noise(model, x.shape[0], g), comps=comps)
            sre += float(re.double().sum())
            skl += float(kl.double().sum())
    n = X.shape[0]
    return (sre + skl) / n, sre / n, skl / n


def active_units(model, X, batch):
    """Units u with Cov_x(E_q[z_u | x]) > 0.01 over X (Burda et al. 2016): (count in z_top, count in z1 or 0)."""
    tops, z1s = [], []
    model.eval()
    with torch.no_grad():
        for r0 in range(0, X.shape[0], batch):
            mt, m1 = model.posterior_means(X[r0:r0 + batch])
            tops.append(mt.double())
            if m1 is not None:
                z1s.append(m1.double())
    count = lambda ms: int((torch.cat(ms).var(0, unbiased=False) > 0.01).sum()) if ms else 0
    return count(tops), count(z1s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("config")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, help="overrides run.seed")
    ap.add_argument("--set", action="append", default=[], metavar="section.key=value")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    a = ap.parse_args()
    cfg, raw = read_config(a.config, a.set, a.seed)
    keep_freed_memory()
    torch.set_num_threads(a.threads)
    splits, raw_train = load_data(cfg)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    m, p, t, e = cfg["model"], cfg["prior"], cfg["train"], cfg["eval"]
    seed = cfg["run"]["seed"]
    D = train.shape[1]
    hw = h5py.File(cfg["data"]["path"], "r").attrs  # the convolutional models' images: height x width
    model = make_model(m["type"], m["likelihood"], p["type"], D, m["hidden"], m["z1"], m["z2"], p["components"],
                       hw.get("height"), hw.get("width"))
    g_init = gen(seed, 0)
    pseudo_images = None
    if p["type"] == "vampprior_data":  # K training images (unbinarised) chosen at random, as the reference
        perm = torch.randperm(raw_train.shape[0], generator=g_init)
        pseudo_images = raw_train[perm[torch.arange(p["components"]) % raw_train.shape[0]]]
    model.init_params(g_init, p["pseudo_mean"], p["pseudo_std"], pseudo_images)
    opt = AdamNormGrad(model.parameters(), t["lr"], normalise=t["optimizer"] == "adamnormgrad")

    os.makedirs(a.out, exist_ok=True)
    resolved = "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) + "\n" for s, keys in raw.items())
    state_path = os.path.join(a.out, "state.pt")
    state = None
    if os.path.exists(state_path):
        state = torch.load(state_path)
        if state["config"] != resolved:
            sys.exit(f"train_ref.py: {a.out} holds the state of a run with another config (its config.ini): "
                     "choose another --out or remove it")
    with open(os.path.join(a.out, "config.ini"), "w") as f:
        f.write(resolved)
    metrics_path = os.path.join(a.out, "metrics.csv")
    if state is None:
        metrics = open(metrics_path, "w")
        metrics.write(METRICS_HEADER + "\n")
    else:  # keep the rows of the epochs the state covers, drop any written after it
        rows = open(metrics_path).read().splitlines()[:1 + state["epoch"]]
        metrics = open(metrics_path, "w")
        metrics.write("\n".join(rows) + "\n")
    nparams = sum(q.numel() for q in model.parameters())
    print(f"train_ref.py: torch {torch.__version__}, {a.threads} thread(s), config {a.config}, seed {seed}\n"
          f"data: {cfg['data']['path']}: train {train.shape[0]}, valid {valid.shape[0]}, test {test.shape[0]} "
          f"images of {D} pixels\nmodel: {m['type']}, prior {p['type']}, likelihood {m['likelihood']}, "
          f"{nparams} parameters; {math.ceil(train.shape[0] / t['batch_size'])} steps per epoch", flush=True)

    g_train = gen(seed, 1)
    best_val, best_epoch, since_best, step, train_seconds = math.inf, 0, 0, 0, 0.0
    best = copy.deepcopy(model.state_dict())
    epoch, stopped = 0, None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        g_train.set_state(state["g_train"])
        best = state["best"]
        best_val, best_epoch, since_best, step, train_seconds, epoch, stopped = (
            state[k] for k in ("best_val", "best_epoch", "since_best", "step", "train_seconds", "epoch", "stopped"))
        print(f"resumed from {state_path} after epoch {epoch}", flush=True)
    B, N = t["batch_size"], train.shape[0]
    while stopped is None and epoch < t["epochs"]:
        epoch += 1
        beta = 1.0 if t["warmup"] == 0 else min(1.0, epoch / t["warmup"])
        t0 = time.perf_counter()
        perm = torch.randperm(N, generator=g_train)
        model.train()  # BatchNorm with the batch's statistics (eval_elbo leaves the model in evaluation mode)
        sl = sre = skl = 0.0
        nb = nseen = 0
        for b0 in range(0, N, B):
            x = train[perm[b0:b0 + B]]
            if cfg["data"]["binarize"] == "dynamic":
                x = torch.bernoulli(x, generator=g_train)
            re, kl = model.loss_terms(x, *noise(model, x.shape[0], g_train))
            loss = torch.mean(re + beta * kl)
            if not math.isfinite(loss.item()):
                stopped = f"non-finite training loss at epoch {epoch}, batch {nb + 1}"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            nb += 1
            nseen += x.shape[0]
            sl += loss.item()
            sre += float(re.mean())
            skl += float(kl.mean())
            if t["max_steps"] and step >= t["max_steps"]:
                stopped = f"train.max_steps = {t['max_steps']} reached"
                break
        t_train = time.perf_counter() - t0
        train_seconds += t_train
        if nb == 0:
            break
        vl, vre, vkl = eval_elbo(model, valid, e["batch"], gen(seed, 2))  # same noise every epoch
        seconds = time.perf_counter() - t0
        nb = max(nb, 1)
        metrics.write(f"{epoch},{step},{beta:.6g},{sl / nb:.6f},{sre / nb:.6f},{skl / nb:.6f},{vl:.6f},{vre:.6f},"
                      f"{vkl:.6f},{seconds:.3f},{nseen / t_train:.1f}\n")
        metrics.flush()
        print(f"epoch {epoch:4d}  step {step:7d}  beta {beta:.3f}  train {sl / nb:.3f} (re {sre / nb:.3f} kl "
              f"{skl / nb:.3f})  valid {vl:.3f} (re {vre:.3f} kl {vkl:.3f})  {seconds:.1f}s", flush=True)
        # early stopping as the reference and vamp_mpi: the counter stays 0 during warm-up
        if vl < best_val:
            best_val, best_epoch, since_best = vl, epoch, 0
            best = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if epoch < t["warmup"]:
                since_best = 0
            if t["patience"] > 0 and since_best > t["patience"]:
                stopped = f"early stopping: no improvement of the validation loss for {since_best} epochs"
            if not math.isfinite(vl):
                stopped = f"non-finite validation loss at epoch {epoch}"
        torch.save({"config": resolved, "model": model.state_dict(), "opt": opt.state_dict(),
                    "g_train": g_train.get_state(), "best": best, "best_val": best_val, "best_epoch": best_epoch,
                    "since_best": since_best, "step": step, "train_seconds": train_seconds, "epoch": epoch,
                    "stopped": stopped}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)
    metrics.close()
    if stopped:
        print(stopped)

    model.load_state_dict(best)
    print(f"evaluating the parameters of epoch {best_epoch} on {test.shape[0]} test images", flush=True)
    tl, tre, tkl = eval_elbo(model, test, e["batch"], gen(seed, 3))
    au_top, au_z1 = active_units(model, test, e["batch"])
    ll = se = None
    if e["samples"] > 0:
        t_is = time.perf_counter()
        last = [t_is]

        def progress(i, n):  # about once a minute: images done, seconds per image, time left
            now = time.perf_counter()
            if now - last[0] > 60 or i == n:
                last[0] = now
                per = (now - t_is) / i
                print(f"  test log-likelihood: {i}/{n} images, {per:.2f} s per image, {per * (n - i) / 60:.0f} min "
                      "left", flush=True)

        model.eval()
        per_image, _ = importance_sampled(model, test, e["samples"], e["block"], gen(seed, 4), progress)
        np.save(os.path.join(a.out, "test_ll.npy"), per_image)
        ll = float(per_image.mean())
        se = float(per_image.std(ddof=1) / math.sqrt(len(per_image))) if len(per_image) > 1 else None
    res = {"test_ll": ll, "test_ll_se": se, "test_elbo": -tl, "test_re": tre, "test_kl": tkl,
           "active_units_z1": au_z1 if model.hvae else au_top, "active_units_z2": au_top if model.hvae else 0,
           "epochs": epoch, "best_epoch": best_epoch, "best_val_loss": best_val, "steps": step,
           "train_seconds": train_seconds, "seed": seed, "threads": a.threads, "torch": torch.__version__,
           "stopped": stopped, "config": a.config}
    res = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in res.items()}  # strict JSON
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    for k in ("test_ll", "test_ll_se", "test_elbo", "test_re", "test_kl"):
        print(f"{k} = {'nan' if res[k] is None else format(res[k], '.4f')}")  # vamp_mpi's result lines
    for k in ("active_units_z1", "active_units_z2", "epochs", "best_epoch"):
        print(f"{k} = {res[k]}")
    print(f"train_seconds = {train_seconds:.1f}\nwrote {a.out}/results.json")


if __name__ == "__main__":
    main()
