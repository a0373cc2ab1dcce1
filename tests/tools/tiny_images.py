#!/usr/bin/python3
"""Writes a small-image copy of a vamp_mpi dataset, for end-to-end tests of the convolutional model that must run
in seconds: every image is averaged over 2x2 blocks and the central HEIGHT x WIDTH of that is kept.

usage: tiny_images.py IN.h5 OUT.h5 HEIGHT WIDTH N_TRAIN N_VALID N_TEST
Only the first N rows of each split are written (uint8, as vamp_prepare writes them); the root attributes are
copied, height and width replaced."""
import sys

import h5py
import numpy as np


def shrink(x, h0, w0, h, w):
    """Rows of h0 x w0 images (N, h0 w0) -> 2x2 block means, centre h x w, as rows (N, h w) of uint8."""
    n = x.shape[0]
    img = x.reshape(n, h0 // 2, 2, w0 // 2, 2).astype(np.float64).mean(axis=(2, 4))
    top, left = (h0 // 2 - h) // 2, (w0 // 2 - w) // 2
    return np.rint(img[:, top:top + h, left:left + w]).astype(np.uint8).reshape(n, h * w)


def main(argv):
    if len(argv) != 8:
        print(__doc__)
        return 2
    src, dst = argv[1], argv[2]
    h, w, counts = int(argv[3]), int(argv[4]), [int(a) for a in argv[5:8]]
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        h0, w0 = int(f.attrs["height"]), int(f.attrs["width"])
        if not (0 < h <= h0 // 2 and 0 < w <= w0 // 2):
            print(f"tiny_images.py: {h}x{w} does not fit in the {h0 // 2}x{w0 // 2} block means of {src}")
            return 2
        for k, v in f.attrs.items():  # strings as variable-length UTF-8, as vamp_prepare writes them
            g.attrs[k] = v.decode() if isinstance(v, bytes) else v
        g.attrs["height"], g.attrs["width"] = np.int32(h), np.int32(w)
        for split, n in zip(("train", "valid", "test"), counts):
            g.create_dataset(split, data=shrink(np.asarray(f[split][:n]), h0, w0, h, w))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
