#!/usr/bin/python3
"""Draws the axial mid-tumour slice of one BraTS-layout case (four modalities and
the label) side by side as a greyscale/colour PNG, for docs/datasets.md.

    /usr/bin/python3 tools/phantom_picture.py data/phantoms/Phantom_001 docs/images/phantom.png

Needs Debian's python3-nibabel and python3-numpy only (the PNG is written by hand).
"""
import struct
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np


def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main(case_dir, out, scale=3):
    case = Path(case_dir)
    cid = case.name
    seg = nib.load(case / f"{cid}_seg.nii.gz").get_fdata()
    z = int(np.argmax((seg > 0).sum(axis=(0, 1))))
    panels = []
    for m in ("flair", "t1", "t1ce", "t2"):
        sl = nib.load(case / f"{cid}_{m}.nii.gz").get_fdata()[:, :, z]
        g = (255 * sl / max(sl.max(), 1e-6)).astype(np.uint8)
        panels.append(np.stack([g, g, g], -1))
    lab = seg[:, :, z]
    colours = {1: (220, 40, 40), 2: (40, 200, 60), 4: (250, 220, 40)}  # necrosis, oedema, enhancing
    rgb = np.zeros(lab.shape + (3,), np.uint8)
    for v, c in colours.items():
        rgb[lab == v] = c
    panels.append(rgb)
    # NIfTI (x, y) -> image rows = y flipped so anterior is up; columns = x.
    row = np.concatenate([np.flipud(p.transpose(1, 0, 2)) for p in panels], axis=1)
    row = row.repeat(scale, 0).repeat(scale, 1)
    png(out, np.ascontiguousarray(row))


if __name__ == "__main__":
    main(*sys.argv[1:3])
