"""Writes the cases of tests/test_fuzz.sh: valid inputs mutated at random with a fixed seed.

usage: fuzz_cases.py OUT_DIR N_CASES SEED [CHECKPOINT.h5]
Each case is a directory OUT_DIR/NNNN holding its input files and a file `cmd`: one line, the kind, the program
(vamp_mpi or vamp_prepare) and its arguments, with {case} standing for the case directory and {seedcfg} for the
configuration the checkpoint was written with. Kinds, in turn:
config text (INI), dataset attributes / shapes / types / filters / values, IDX files, .amat files, .mat files
and, given a checkpoint, checkpoint attributes and datasets.
"""
import gzip
import os
import random
import struct
import sys

import h5py
import numpy as np
from scipy.io import savemat

out, n_cases, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ckpt = sys.argv[4] if len(sys.argv) > 4 else None
R = random.Random(seed)
NR = np.random.default_rng(seed)

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_base.ini")) as f:
    BASE_INI = f.read()
KEYS = ["run.dir", "run.seed", "data.path", "data.binarize", "data.stripes", "data.train_limit", "model.type",
        "model.likelihood", "model.hidden", "model.z1", "model.z2", "prior.type", "prior.components",
        "prior.pseudo_mean", "prior.pseudo_std", "train.batch_size", "train.epochs", "train.lr", "train.warmup",
        "train.optimizer", "train.reduce", "train.on_nan", "eval.samples", "eval.block", "eval.batch",
        "checkpoint.every_steps", "checkpoint.keep", "checkpoint.every_minutes"]
ODD_VALUES = ["", "-1", "0", "1", "2", "3", "7", "4096", "100000", "1e309", "nan", "inf", "-inf", "0x10", "1e-12",
              "99999999999999999999", "18446744073709551616", "vae", "hvae", "mog", "standard", "vampprior_data",
              "none", "static", "logistic256", "fast", "skip", " ", "a" * 300, "a" * 1100, "\u00e9\u00e8", "1 2",
              "; 3", "=", "[x]", "\t5"]


def mutate_text(t):
    b = bytearray(t.encode())
    for _ in range(R.randint(1, 4)):
        op = R.randrange(9)
        pos = R.randrange(len(b) + 1)
        if op == 0 and b:  # flip a byte
            b[min(pos, len(b) - 1)] = R.randrange(256)
        elif op == 1:  # delete a stretch
            del b[pos:pos + R.randint(1, 20)]
        elif op == 2:  # insert junk
            b[pos:pos] = bytes(R.randrange(256) for _ in range(R.randint(1, 8)))
        elif op == 3:  # a key with an odd value, possibly twice or in the wrong section
            k = R.choice(KEYS)
            sec, name = k.split(".")
            line = f"\n[{sec if R.random() < 0.8 else 'bogus'}]\n{name} = {R.choice(ODD_VALUES)}\n"
            b[pos:pos] = line.encode()
        elif op == 4:  # a long line (comment or value) with a setting-like tail
            b[pos:pos] = ("\n; " + "x" * R.choice([190, 197, 198, 250, 4090, 5000]) + "train_limit = 3\n").encode()
        elif op == 5:  # duplicate a line
            lines = bytes(b).split(b"\n")
            i = R.randrange(len(lines))
            lines.insert(i, lines[i])
            b = bytearray(b"\n".join(lines))
        elif op == 6:  # CR line ends or a NUL
            b = bytearray(bytes(b).replace(b"\n", b"\r\n")) if R.random() < 0.5 else b[:pos] + b"\0" + b[pos:]
        elif op == 7:  # continuation line
            b[pos:pos] = b"\n   continued = 1\n"
        else:  # truncate
            del b[pos:]
    return bytes(b)


def dataset(path, mutate=None):
    attrs = dict(format="vamp_mpi-dataset", version=1, height=2, width=3, kind="gray", source="fuzz")
    with h5py.File(path, "w") as f:
        for s, n in (("train", 24), ("valid", 8), ("test", 8)):
            f[s] = NR.integers(0, 256, size=(n, 6), dtype=np.uint8)
        for k, v in attrs.items():
            f.attrs[k] = v
        if mutate:
            try:
                mutate(f)
            except Exception:  # a mutation h5py itself refuses: another kind of damage instead
                f.attrs["version"] = 2


ATTR_VALUES = [None, 0, -1, 1, 2, 3, 65536, 65537, 2**31, 2**40, 1.5, float("nan"), float("inf"), "1", "gray",
               "binary", "vamp_mpi-dataset", "x" * 500, b"\xff\xfe", np.array([2, 3]), np.array([], dtype=np.int32),
               np.int8(2), np.uint64(2**63), np.float16(2), True, np.array(["a", "b"], dtype="S1")]
DTYPES = [np.int8, np.int16, np.uint16, np.uint32, np.int64, np.float16, np.float64, np.bool_, "S4",
          np.dtype([("a", np.uint8), ("b", np.float32)])]


def dataset_mutation(f):
    split = R.choice(["train", "valid", "test"])
    op = R.randrange(10)
    x = f[split][...]
    if op == 0:  # an attribute: missing or of another type or value
        k = R.choice(["format", "version", "height", "width", "kind", "source"])
        v = R.choice(ATTR_VALUES)
        if v is None:
            del f.attrs[k]
        else:
            f.attrs[k] = v
    elif op == 1:  # another shape
        shape = R.choice([(0, 6), (1, 6), (24,), (24, 6, 1), (24, 5), (24, 7), (3, 6), (24, 0), ()])
        del f[split]
        f.create_dataset(split, shape=shape, dtype=np.uint8) if shape != () else f.create_dataset(split, data=np.uint8(3))
    elif op == 2:  # another element type
        dt = R.choice(DTYPES)
        del f[split]
        f.create_dataset(split, shape=x.shape, dtype=dt)
    elif op == 3:  # filters and chunking
        del f[split]
        kw = R.choice([dict(compression="lzf"), dict(compression="gzip", shuffle=True), dict(fletcher32=True),
                       dict(scaleoffset=0), dict(chunks=(1, 1)), dict(compression=307, allow_unknown_filter=True),
                       dict(chunks=(24, 6), compression="gzip", compression_opts=9)])
        try:
            f.create_dataset(split, data=x, **kw)
        except Exception:
            f.create_dataset(split, data=x, compression="lzf")
    elif op == 4:  # float values out of range
        y = (x / 255.0).astype(np.float32)
        y.flat[R.randrange(y.size)] = R.choice([np.nan, np.inf, -np.inf, -0.0, -1e-7, 1.0000001, 2.0, 1e38])
        del f[split]
        f[split] = y
    elif op == 5:  # a group, a dangling soft link, an external link, or nothing where a split belongs
        del f[split]
        choice = R.randrange(4)
        if choice == 0:
            f.create_group(split)
        elif choice == 1:
            f[split] = h5py.SoftLink("/nowhere")
        elif choice == 2:
            f[split] = h5py.ExternalLink("missing.h5", "/x")
    elif op == 6:  # declared sizes far beyond the file
        del f[split]
        f.create_dataset(split, shape=(R.choice([10**6, 2**32, 10**12, 2**62]), 6), dtype=np.uint8, chunks=(64, 6),
                         maxshape=(None, 6))
    elif op == 7:  # an empty (null) dataspace or a scalar
        del f[split]
        f.create_dataset(split, data=h5py.Empty("u1"))
    elif op == 8:  # image attributes that multiply up large
        f.attrs["height"], f.attrs["width"] = R.choice([(65536, 65536), (4096, 4097), (1, 6), (6, 1), (3, 2)])
    else:  # a variable-length string attribute with odd bytes
        f.attrs.create(R.choice(["format", "kind"]), R.choice(["gray\0x", "", "\u00e9"]),
                       dtype=h5py.string_dtype("utf-8"))


def idx_bytes(n, r, c, magic=0x803):
    return struct.pack(">IIII", magic, n, r, c) + bytes(NR.integers(0, 256, n * r * c, dtype=np.uint8))


def mutate_bytes(b, header=16):
    b = bytearray(b)
    op = R.randrange(6)
    if op == 0:  # a header field
        i = R.randrange(min(header, len(b)) // 4) * 4 if len(b) >= 4 else 0
        b[i:i + 4] = struct.pack(">I", R.choice([0, 1, 0x801, 0x803, 0x80803, 2**31, 2**32 - 1, 65537, 28]))
    elif op == 1:
        del b[R.randrange(len(b) + 1):]
    elif op == 2:
        b += bytes(R.randrange(256) for _ in range(R.randint(1, 40)))
    elif op == 3 and b:
        for _ in range(R.randint(1, 10)):
            b[R.randrange(len(b))] = R.randrange(256)
    elif op == 4:
        b = bytearray(b[:header])
    else:
        b = bytearray()
    return bytes(b)


def amat_text():
    rows = [" ".join(R.choice("01") for _ in range(16)) for _ in range(R.randint(1, 6))]
    op = R.randrange(6)
    if op == 0:
        rows[R.randrange(len(rows))] += " " + R.choice(["2", "-1", "0.5", "x", "1e3", "01"])
    elif op == 1:
        rows.append(" ".join("1" for _ in range(R.choice([15, 17, 9, 0]))))
    elif op == 2:
        rows = [r.replace(" ", R.choice(["\t", "  ", ",", "\r"])) for r in rows]
    elif op == 3:
        rows = [" ".join("0" for _ in range(R.choice([1, 2, 10, 100000])))]
    elif op == 4:
        return bytes(R.randrange(256) for _ in range(R.randint(0, 200)))
    return ("\n".join(rows) + R.choice(["\n", "", "\n\n\n"])).encode()


def mat_file(path):
    op = R.randrange(8)
    mode = R.choice(["omniglot", "caltech", "frey"])
    good = {"omniglot": {"data": NR.random((784, 1350)), "testdata": NR.random((784, 3))},
            "caltech": {k: NR.integers(0, 2, (3, 784)).astype(float) for k in ("train_data", "val_data", "test_data")},
            "frey": {"ff": NR.integers(0, 256, (560, 1965)).astype(np.uint8)}}[mode]
    var = R.choice(list(good))
    v = good[var]
    if op == 0:
        good[var] = v.astype(R.choice([np.complex64, np.int32, np.int8, np.float32, np.uint16, np.bool_]))
    elif op == 1:
        good[var] = v.T
    elif op == 2:
        good[var] = v.reshape(-1)
    elif op == 3:
        w = v.astype(float)
        w.flat[R.randrange(w.size)] = R.choice([np.nan, np.inf, -1.0, 2.0, 256.0, 0.5])
        good[var] = w
    elif op == 4:
        good[var] = R.choice([{"a": 1}, np.array([[1, 2]], dtype=object), "text", np.zeros((0, 784))])
    elif op == 5:
        good = {"other": v}
    elif op == 6:
        good[var] = v[:, :R.randint(0, 3)] if v.ndim == 2 else v
    try:
        savemat(path, good, do_compression=R.random() < 0.5)
    except Exception:  # scipy refuses that variable: a missing one instead
        savemat(path, {"other": v})
    if op == 7:
        with open(path, "r+b") as f:
            b = bytearray(f.read())
            for _ in range(R.randint(1, 20)):
                b[R.randrange(len(b))] = R.randrange(256)
            f.seek(0)
            f.write(b)
    return mode


def ckpt_mutation(src, dst):
    import shutil
    shutil.copy(src, dst)
    try:
        ckpt_mutate(dst)
    except Exception:  # a mutation h5py refuses: the copy truncated instead
        os.truncate(dst, os.path.getsize(dst) // 2)


def ckpt_mutate(dst):
    with h5py.File(dst, "r+") as f:
        names = []
        f.visit(names.append)
        attrs = [(n, k) for n in [""] + names for k in (f[n] if n else f).attrs.keys()]
        op = R.randrange(4)
        if op == 0 and attrs:  # an attribute's value or type
            n, k = R.choice(attrs)
            obj = f[n] if n else f
            obj.attrs[k] = R.choice(ATTR_VALUES[1:])
        elif op == 1 and attrs:
            n, k = R.choice(attrs)
            del (f[n] if n else f).attrs[k]
        elif op == 2 and names:  # a dataset's shape or type
            n = R.choice([x for x in names if isinstance(f[x], h5py.Dataset)] or names)
            obj = f[n]
            if isinstance(obj, h5py.Dataset):
                shape = obj.shape
                del f[n]
                f.create_dataset(n, shape=R.choice([shape[:-1] + (max(0, (shape[-1] if shape else 1) - 1),), (3,), ()]),
                                 dtype=R.choice([np.float32, np.float64, np.int32]))
        elif names:  # a dataset or group removed
            del f[R.choice(names)]


os.makedirs(out, exist_ok=True)
dataset(f"{out}/good.h5")
kinds = ["config", "dataset", "idx", "amat", "mat"] + (["checkpoint"] if ckpt else [])
for i in range(n_cases):
    d = f"{out}/{i:04d}"
    os.makedirs(d)
    kind = kinds[i % len(kinds)]
    with open(f"{d}/base.ini", "w") as f:
        f.write(BASE_INI.replace("{case}", d))
    if kind == "config":
        with open(f"{d}/cfg.ini", "wb") as f:
            f.write(mutate_text(BASE_INI.replace("{case}", d)))
        cmd = "vamp_mpi {case}/cfg.ini"
    elif kind == "dataset":
        dataset(f"{d}/data.h5", dataset_mutation)
        cmd = "vamp_mpi {case}/base.ini --set data.path={case}/data.h5"
    elif kind == "idx":
        tr, te = idx_bytes(30, 2, 3), idx_bytes(8, 2, 3)
        which = R.randrange(2)
        tr, te = (mutate_bytes(tr), te) if which == 0 else (tr, mutate_bytes(te))
        opener = gzip.open if R.random() < 0.4 else open
        with opener(f"{d}/train.idx", "wb") as f:
            f.write(tr)
        with open(f"{d}/test.idx", "wb") as f:
            f.write(te)
        if opener is gzip.open and R.random() < 0.5:  # a damaged gzip stream
            with open(f"{d}/train.idx", "r+b") as f:
                b = bytearray(f.read())
                b[R.randrange(10, len(b))] ^= 1 << R.randrange(8)
                f.seek(0)
                f.write(b)
        cmd = "vamp_prepare idx --train-images {case}/train.idx --test-images {case}/test.idx --out {case}/o.h5 --n-valid 5"
    elif kind == "amat":
        good = lambda n: ("\n".join(" ".join(R.choice("01") for _ in range(16)) for _ in range(n)) + "\n").encode()
        files = [good(5), good(3), good(4)]
        files[R.randrange(3)] = amat_text()
        for name, b in zip(("train", "valid", "test"), files):
            with open(f"{d}/{name}.amat", "wb") as f:
                f.write(b)
        cmd = "vamp_prepare amat --train {case}/train.amat --valid {case}/valid.amat --test {case}/test.amat --out {case}/o.h5"
    elif kind == "mat":
        mode = mat_file(f"{d}/x.mat")
        cmd = f"vamp_prepare {mode} --mat {{case}}/x.mat --out {{case}}/o.h5"
    else:
        ckpt_mutation(ckpt, f"{d}/ckpt.h5")
        cmd = "vamp_mpi {seedcfg} --resume {case}/ckpt.h5 --set run.dir={case}/run"  # the checkpoint's own config
    with open(f"{d}/cmd", "w") as f:
        f.write(f"{kind} {cmd}\n")
