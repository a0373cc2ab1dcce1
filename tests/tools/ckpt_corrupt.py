#!/usr/bin/python3
"""Damaged copies of a vamp_mpi checkpoint, for tests/test_faults.sh.

usage:
  ckpt_corrupt.py variants GOOD.h5 OUTDIR FIRST_STEP MANIFEST
      For every root attribute of GOOD.h5: one copy per byte of its stored value (strings: the first, middle and
      last byte) with one bit of that byte flipped, and one copy without the attribute. The copies are named
      OUTDIR/ckpt-<step>.h5, step counting up from FIRST_STEP; MANIFEST gets one line per copy:
      "<path> <attribute> <what was done>".
  ckpt_corrupt.py forge IN.h5 OUT.h5 ATTR VALUE
      OUT.h5 = IN.h5 with the double attribute ATTR set to VALUE and crc32_attrs recomputed as vamp_mpi does
      (name, type class, stored bytes of every other root attribute in name order): a record whose checksum
      is right but whose value is not, to reach the range and consistency checks behind the checksum.
"""
import shutil
import sys
import zlib

import h5py
import numpy as np


def raw_attr(f, name):
    """(type id, stored bytes or str, is a variable-length string)"""
    aid = h5py.h5a.open(f.id, name.encode())
    ftype = aid.get_type()
    if ftype.get_class() == h5py.h5t.STRING and ftype.is_variable_str():
        return aid, ftype, f.attrs[name], True
    n = aid.get_space().get_simple_extent_npoints()
    buf = np.zeros(ftype.get_size() * n, dtype=np.uint8)
    aid.read(buf, mtype=ftype)
    return aid, ftype, buf, False


def flip(path, name, pos):
    with h5py.File(path, "r+") as f:
        aid, ftype, val, vlen = raw_attr(f, name)
        if vlen:
            b = bytearray(val.encode())
            b[pos] ^= 0x01  # stays ASCII, so the string stays valid UTF-8
            f.attrs.modify(name, b.decode())
        else:
            val[pos] ^= 0x01 if pos % 2 else 0x10
            aid.write(val, mtype=ftype)


def stored_len(f, name):
    """(bytes stored, is a string)"""
    _, ftype, val, vlen = raw_attr(f, name)
    return (len(val.encode()), True) if vlen else (len(val), ftype.get_class() == h5py.h5t.STRING)


def variants(good, outdir, step, manifest):
    with h5py.File(good, "r") as f:
        names = sorted(f.attrs.keys())
        sizes = {n: stored_len(f, n) for n in names}
    lines = []
    for name in names:
        n, is_str = sizes[name]
        positions = sorted({0, n // 2, n - 1}) if is_str else range(n)
        for pos in positions:
            out = f"{outdir}/ckpt-{step:08d}.h5"
            shutil.copyfile(good, out)
            flip(out, name, pos)
            lines.append(f"{out} {name} flipped-byte-{pos}")
            step += 1
        out = f"{outdir}/ckpt-{step:08d}.h5"
        shutil.copyfile(good, out)
        with h5py.File(out, "r+") as f:
            del f.attrs[name]
        lines.append(f"{out} {name} deleted")
        step += 1
    with open(manifest, "w") as m:
        m.write("\n".join(lines) + "\n")
    print(f"{len(lines)} damaged copies of {good} ({len(names)} attributes)")


def attrs_crc(f):
    c = 0
    for name in sorted(f.attrs.keys(), key=lambda s: s.encode()):
        if name == "crc32_attrs":
            continue
        _, ftype, val, vlen = raw_attr(f, name)
        c = zlib.crc32(name.encode() + b"\0", c)
        c = zlib.crc32(bytes([ftype.get_class()]), c)
        c = zlib.crc32(val.encode() + b"\0" if vlen else val.tobytes(), c)
    return c


def forge(src, dst, name, value):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs.modify(name, np.float64(value))
        f.attrs.modify("crc32_attrs", np.uint32(attrs_crc(f)))


def main():
    if sys.argv[1] == "variants":
        variants(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "forge":
        forge(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
