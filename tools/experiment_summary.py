#!/usr/bin/python3
"""Summarises tools/experiment_phantoms.sh: for UniMRSeg after stage 3, after
stage 2, and the baseline, the mean +- sd over seeds of the Average and Std Dev
rows (Dice %, per region), then per subset the mean over seeds of UniMRSeg's
Dice minus the baseline's.

    /usr/bin/python3 tools/experiment_summary.py runs/experiment
"""
import json
import statistics
import sys
from pathlib import Path

MODELS = [("UniMRSeg, stage 3", "eval"), ("UniMRSeg, stage 2", "stage2_eval"), ("baseline", "baseline_eval")]
REGIONS = ["WT", "TC", "ET"]


def ms(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def main(root):
    seeds = sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name.startswith("seed"))
    if not seeds:
        sys.exit(f"{root}: no seed*/ folders (run tools/experiment_phantoms.sh first)")
    reports = {m: [json.loads((s / d / "report.json").read_text()) for s in seeds] for m, d in MODELS}
    print(f"{len(seeds)} seeds ({', '.join(s.name for s in seeds)}), {reports['baseline'][0]['cases']} test cases\n")
    print("| model | Average WT | TC | ET | Std Dev WT | TC | ET |")
    print("|---|---|---|---|---|---|---|")
    for m, _ in MODELS:
        avg = [ms([r["average"]["dice_" + g] for r in reports[m]]) for g in REGIONS]
        sd = [ms([r["std_dev"]["dice_" + g] for r in reports[m]]) for g in REGIONS]
        print(f"| {m} | " + " | ".join(avg + sd) + " |")
    print("\nPer subset, UniMRSeg (stage 3) minus baseline, mean over seeds (Dice points):\n")
    print("| present | WT | TC | ET |")
    print("|---|---|---|---|")
    for i, row in enumerate(reports["baseline"][0]["subsets"]):
        cells = []
        for g in REGIONS:
            diffs = []
            for u, b in zip(reports["UniMRSeg, stage 3"], reports["baseline"]):
                x, y = u["subsets"][i]["dice_" + g], b["subsets"][i]["dice_" + g]
                if x is not None and y is not None:
                    diffs.append(x - y)
            cells.append(f"{statistics.mean(diffs):+.2f}" if diffs else "-")
        print(f"| {row['present']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
