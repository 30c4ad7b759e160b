#!/usr/bin/python3
"""Region volumes and contrasts of BraTS-layout cases, as Markdown tables for
docs/datasets.md: per region (WT, TC, ET, NCR, ED) the mean volume in cm^3 and
the fraction of the brain (min-max over cases), the share of cases where it is
present, and per sequence each label's mean intensity divided by the mean of the
normal-appearing brain of the same case (median over cases), with the spread of
that ratio over cases.

    /usr/bin/python3 tools/phantom_stats.py data/phantoms

Needs Debian's python3-nibabel and python3-numpy only.
"""
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

MODALITIES = ["t1", "t1ce", "t2", "flair"]
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,), "NCR": (1,), "ED": (2,)}


def main(root):
    cases = sorted(p for p in Path(root).iterdir() if (p / f"{p.name}_seg.nii.gz").exists())
    if not cases:
        sys.exit(f"{root}: no case folders with <ID>_seg.nii.gz")
    vol = {r: [] for r in REGIONS}
    frac = {r: [] for r in REGIONS}
    ratio = {(m, l): [] for m in MODALITIES for l in (1, 2, 4)}
    for case in cases:
        seg_img = nib.load(case / f"{case.name}_seg.nii.gz")
        seg = np.asarray(seg_img.dataobj)
        voxel_cm3 = float(np.prod(seg_img.header.get_zooms()[:3])) / 1000.0
        images = {m: np.asarray(nib.load(case / f"{case.name}_{m}.nii.gz").dataobj, dtype=np.float64) for m in MODALITIES}
        brain = np.any([images[m] > 0 for m in MODALITIES], axis=0)
        for r, labels in REGIONS.items():
            n = np.isin(seg, labels).sum()
            vol[r].append(n * voxel_cm3)
            frac[r].append(n / brain.sum())
        normal = brain & (seg == 0)
        for m in MODALITIES:
            ref = images[m][normal].mean()
            for l in (1, 2, 4):
                if (seg == l).any():
                    ratio[(m, l)].append(images[m][seg == l].mean() / ref)
    print(f"{len(cases)} cases from {root}\n")
    print("| region | mean volume (cm^3) | min-max (cm^3) | mean % of brain | present in |")
    print("|---|---|---|---|---|")
    for r in REGIONS:
        v, f = np.array(vol[r]), np.array(frac[r]) * 100
        print(f"| {r} | {v.mean():.1f} | {v.min():.1f}-{v.max():.1f} | {f.mean():.2f} | {np.mean(v > 0) * 100:.0f} % |")
    print("\n| sequence | necrosis (1) / brain | oedema (2) / brain | enhancing (4) / brain |")
    print("|---|---|---|---|")
    for m in MODALITIES:
        cells = []
        for l in (1, 2, 4):
            x = np.array(ratio[(m, l)])
            cells.append(f"{np.median(x):.2f} ({x.min():.2f}-{x.max():.2f})" if len(x) else "-")
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
