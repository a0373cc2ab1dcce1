#!/usr/bin/python3
"""How evenly data.stripes S fall on P ranks, and the ideal speed-up that allows (the table in docs/running.md).

Rank r of P holds stripes [r*S/P, (r+1)*S/P) (include/vamp/plan.h): S mod P ranks hold ceil(S/P) stripes, the
others floor(S/P). Every stripe is one chunk of batch/S rows with its own forward and backward, and each step
waits for the ranks with the most chunks, so the chunk work of a step on P ranks takes ceil(S/P) chunk times
against S on one rank with the same S: an ideal speed-up of S / ceil(S/P) (P when P divides S). Ideal: it leaves
out the reduction, the optimiser and the GEMM size (batch/S rows per chunk; see docs/performance.md).

usage: stripe_balance.py [--batch 100] [--ranks 2,3,4,8,16,32] [--markdown]
"""
import argparse


def balance(S, P):
    """(max stripes per rank, mean stripes per rank, ideal speed-up over 1 rank with the same S)."""
    most = -(-S // P)
    return most, S / P, S / most


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100, help="train.batch_size: S runs over its divisors")
    ap.add_argument("--ranks", default="2,3,4,8,16,32", help="rank counts P, comma-separated")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    ranks = [int(p) for p in a.ranks.split(",")]
    stripes = [s for s in range(1, a.batch + 1) if a.batch % s == 0]
    head = ["S (rows/chunk)"] + [f"P = {p}" for p in ranks]
    rows = []
    for S in stripes:
        cells = [f"{S} ({a.batch // S})"]
        for P in ranks:
            if P > S:
                cells.append("refused")
            else:
                most, mean, speedup = balance(S, P)
                cells.append(f"{most} / {mean:.2f} → {speedup:.1f}")
        rows.append(cells)
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = max(len(c) for r in rows + [head] for c in r)
        for r in [head] + rows:
            print("  ".join(c.rjust(w) for c in r))


if __name__ == "__main__":
    main()
