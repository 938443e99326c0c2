"""Composition of a pose dataset file: frames per source and split, and per split every subject
with its sources, frames and action groups.

    python benchmarks/data_composition.py data/mocap30_v5.npz [--cmu-index CSV] [--markdown]

Action groups are coarse labels for reading the split, not training labels: HDM05's class
(from the file name), acLSTM's folder, "jumps" for the DeepMimic jump retargets, and for CMU
ASF/AMC trials a keyword of the trial's description in the CMU index (``CMU_data.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_INDEX = HERE.parent.parent / "shared" / "data" / "mocap" / "cmu_index" / "CMU_data.csv"

# First matching keyword wins; order puts the specific activities before walking.
_CMU_GROUPS = (
    ("dance", ("ballet", "dance", "lindy", "salsa", "pirouette", "arabesque", "jete", "dancing")),
    ("basketball", ("basketball", "dribble", "dribbling")),
    (
        "stretch/exercise",
        (
            "stretch",
            "exercise",
            "yoga",
            "jumping jack",
            "squat",
            "toe touch",
            "twist",
            "side step",
            "lunge",
            "pushup",
            "push up",
            "situp",
        ),
    ),
    ("playground/climb", ("playground", "climb", "hang", "swing")),
    ("fight/sword", ("punch", "strike", "sword", "box", "kick", "fight")),
    ("jump", ("jump", "hop", "leap")),
    ("run/jog", ("run", "jog", "sprint")),
    (
        "walk",
        ("walk", "stride", "march", "stroll", "figure", "turn", "mummy", "digital", "forward"),
    ),
)


def cmu_descriptions(path: Path) -> dict[tuple[int, int], str]:
    """``(subject, trial) -> description`` from the CMU index csv (empty when absent)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {
            (int(r["Subject"]), int(r["Trial #"])): r["Motion Description"]
            for r in csv.DictReader(f)
        }


def action_group(name: str, descriptions: dict[tuple[int, int], str]) -> str:
    """Coarse action label of the sequence ``name`` (its path below the build root)."""
    parts = Path(name).parts
    source, stem = parts[0], Path(name).stem
    m = re.match(r"HDM_[A-Za-z]+_([A-Za-z]+)", Path(name).name)
    if m:  # the class up to its first digit: jogLeftCircle4StepsRstart -> jogLeftCircle
        return m.group(1)
    if "deepmimic" in source:
        return "jump"
    m = re.fullmatch(r"(\d+)_(\d+)", stem)
    if m:
        text = descriptions.get((int(m.group(1)), int(m.group(2))), "").lower()
        for group, words in _CMU_GROUPS:
            if any(w in text for w in words):
                return group
        return "other" if text else "unknown"
    return parts[-2] if len(parts) > 2 else source


def composition(path: str | Path, index: Path = DEFAULT_INDEX) -> dict:
    """Frames per source and split, and per split each subject's frames, sources and groups."""
    with np.load(path, allow_pickle=False) as d:
        seq, sub, split = d["sequence"], d["subject"], d["split"]
        seq_names = [str(s) for s in d["sequence_names"]]
        sub_names = [str(s) for s in d["subject_names"]]
        split_names = [str(s) for s in d["split_names"]]
    desc = cmu_descriptions(Path(index))
    seq_frames = np.bincount(seq, minlength=len(seq_names))
    seq_subject = np.zeros(len(seq_names), dtype=np.int64)
    seq_split = np.zeros(len(seq_names), dtype=np.int64)
    seq_subject[seq], seq_split[seq] = sub, split
    per_source: dict[str, Counter] = defaultdict(Counter)
    subjects: dict[str, dict] = {}
    for k, name in enumerate(seq_names):
        if seq_frames[k] == 0:
            continue
        s, sp = sub_names[seq_subject[k]], split_names[seq_split[k]]
        source = Path(name).parts[0]
        per_source[source][sp] += int(seq_frames[k])
        entry = subjects.setdefault(
            s, {"split": sp, "frames": 0, "sources": Counter(), "groups": Counter()}
        )
        if entry["split"] != sp:  # a subject is one person: one side of the split only
            raise ValueError(f"subject {s} has frames in both {entry['split']} and {sp}")
        entry["frames"] += int(seq_frames[k])
        entry["sources"][source] += int(seq_frames[k])
        entry["groups"][action_group(name, desc)] += int(seq_frames[k])
    return {
        "per_source": {k: dict(v) for k, v in sorted(per_source.items())},
        "subjects": dict(sorted(subjects.items())),
        "split_names": split_names,
    }


def markdown(comp: dict) -> str:
    splits = comp["split_names"]
    lines = ["| source | " + " | ".join(splits) + " | all |", "|---|" + "---|" * (len(splits) + 1)]
    totals = Counter()
    for source, c in comp["per_source"].items():
        totals.update(c)
        lines.append(
            f"| {source} | "
            + " | ".join(f"{c.get(s, 0):,}" for s in splits)
            + f" | {sum(c.values()):,} |"
        )
    lines.append(
        "| **all** | "
        + " | ".join(f"**{totals.get(s, 0):,}**" for s in splits)
        + f" | **{sum(totals.values()):,}** |"
    )
    lines += [
        "",
        "| split | subject | frames | sources (frames) | action groups (frames) |",
        "|---|---|---|---|---|",
    ]
    for sp in splits:
        for s, e in comp["subjects"].items():
            if e["split"] != sp:
                continue
            src = ", ".join(
                f"{k.split('_')[0]}{'-' + k.split('_')[1] if '_' in k else ''} {v:,}"
                for k, v in e["sources"].most_common()
            )
            grp = ", ".join(f"{k} {v:,}" for k, v in e["groups"].most_common())
            lines.append(f"| {sp} | `{s}` | {e['frames']:,} | {src} | {grp} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--cmu-index", type=Path, default=DEFAULT_INDEX)
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables, not JSON")
    args = ap.parse_args(argv)
    comp = composition(args.data, args.cmu_index)
    if args.markdown:
        print(markdown(comp))
    else:
        print(json.dumps(comp, default=dict, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
