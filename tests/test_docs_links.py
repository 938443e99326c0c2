"""The docs' cross-references: links and anchors resolve, named repository files exist.

Pages are regenerated and renamed across rounds (results files, headings such as "A pose
density for GAN-S (round 8)"), and a link to a heading that no longer exists renders as plain
text on GitHub without any error. These checks read the Markdown only (no model, no data).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PAGES += sorted((REPO / "docs" / "api").glob("*.md"))
PAGES += sorted((REPO / "advprior" / "weights").glob("*/README.md"))

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target), with an optional "title"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# a repository path in prose or in a command: benchmarks/results/x.json, tests/t.py::test_x, ...
REPO_PATH = re.compile(
    r"(?<![\w/.\-])((?:benchmarks|docs|examples|scripts|tests|advprior)/[\w./{},*\-]*[\w*}])"
)
HUB_REPO_ID = re.compile(r"^advprior/[\w\-]+$")  # "advprior/gan-s" is a Hub repo id, not a folder


def prose_lines(text: str):
    """(line number, line) of a Markdown text outside fenced code blocks."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield number, line


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: link text kept, lower case, punctuation dropped, spaces to
    hyphens (``A pose density for GAN-S (round 8)`` -> ``a-pose-density-for-gan-s-round-8``)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page; repeated headings get GitHub's -1, -2, ... suffixes."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match is None:
            continue
        slug = github_anchor(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links of `text` (the content of `page`) whose file or heading does not exist."""
    bad = []
    for number, line in prose_lines(text):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.\-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve()
            if file and not dest.exists():
                bad.append(f"{page.name}:{number}: {target}: no such file")
            elif anchor and (not file or dest.suffix == ".md"):
                dest_text = dest.read_text(encoding="utf-8") if file else text
                if anchor not in anchors(dest_text):
                    bad.append(f"{page.name}:{number}: {target}: no such heading")
    return bad


def expand_braces(path: str) -> list[str]:
    """``a_{x,y}.json`` -> ``a_x.json``, ``a_y.json`` (the shell's brace expansion)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [p for alt in match.group(1).split(",") for p in expand_braces(head + alt + tail)]


def missing_paths(text: str, root: Path) -> list[str]:
    """Repository paths named in `text` (globs and braces allowed) that match no file."""
    bad = []
    for number, line in enumerate(text.splitlines(), 1):
        for raw in REPO_PATH.findall(line):
            raw = raw.rstrip(".")
            if HUB_REPO_ID.match(raw):
                continue
            for path in expand_braces(raw):
                path = path.split("::")[0]  # tests/test_x.py::test_name
                if not glob.glob(str(root / path)):
                    bad.append(f"{number}: {path}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_and_anchors_resolve(page: Path) -> None:
    assert broken_links(page, page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_repository_files_exist(page: Path) -> None:
    """benchmarks/results/*.json, examples/*.py, tests/*.py::test_x ... named by a page exist."""
    assert missing_paths(page.read_text(encoding="utf-8"), REPO) == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Results (round 8)\n\n## Results (round 8)\n")
    text = (
        "# Top\n[ok](other.md#results-round-8) [ok](other.md#results-round-8-1) [ok](#top)\n"
        "[bad](other.md#results-round-7) [bad](gone.md) [bad](#nowhere)\n"
        "```\n[in code](gone.md)\n```\n"
    )
    assert [b.split(": ", 1)[1] for b in broken_links(page, text)] == [
        "other.md#results-round-7: no such heading",
        "gone.md: no such file",
        "#nowhere: no such heading",
    ]
    assert github_anchor("Sequences (`fit_sequence`)") == "sequences-fit_sequence"
    assert github_anchor("Choosing the 0.2.0 GAN-S recipe (validation only)") == (
        "choosing-the-020-gan-s-recipe-validation-only"
    )
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "a_x.json").write_text("{}")
    named = "`benchmarks/results/a_{x,y}.json`, `benchmarks/results/a_*.json`, advprior/gan-s."
    assert missing_paths(named, tmp_path) == ["1: benchmarks/results/a_y.json"]


def test_training_md_counts_the_regeneration_steps() -> None:
    """docs/training.md says how many steps scripts/regenerate_docs.sh has; keep it true."""
    script = (REPO / "scripts" / "regenerate_docs.sh").read_text(encoding="utf-8")
    body = script[script.index("STEPS=(") : script.index("\n)\n")]
    steps = re.findall(r'^\s+"(.+)"$', body, flags=re.M)
    training = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    quoted = re.search(r"\((\d+) steps, each one of the commands", training)
    assert quoted is not None, "docs/training.md no longer quotes the number of steps"
    assert int(quoted.group(1)) == len(steps)


def test_training_md_release_commands_are_those_of_the_shipped_weights() -> None:
    """Each command of docs/training.md's "Reproduce the shipped weights" table, parsed by the
    CLI, gives the settings its shipped model card records. Model selection picks among the
    validated steps, so --val-every decides the weights: gan-u's selected step 3250 is never
    validated at the CLI's default of every 500 steps."""
    from advprior.cli import build_parser
    from advprior.commands.train import DEFAULT_STEPS
    from advprior.hub import load_pretrained

    training = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    common = re.search(r"\(after `advprior train ([^`]+)`\)", training)
    assert common is not None, "docs/training.md no longer names the common arguments"
    rows = dict(re.findall(r"^\| `(gan-[sun]|vae|gmm)` \| `([^`]+)`", training, flags=re.M))
    assert sorted(rows) == ["gan-n", "gan-s", "gan-u", "gmm", "vae"]
    # CLI option -> the name the trainers record in the model card's config
    names = {
        "seed": "seed",
        "batch_size": "batch_size",
        "hidden": "hidden_dim",
        "val_every": "val_every",
        "ckpt_every": "ckpt_every",
        "val_samples": "val_samples",
        "select": "select",
        "latent": "latent",
        "d_steps": "d_steps",
        "disc_hidden": "disc_hidden_dim",
        "ema": "ema_decay",
        "r1": "r1_gamma",
    }
    for alias, flags in rows.items():
        argv = ["train", *common.group(1).split(), "--out", "x", *flags.split()]
        args = build_parser().parse_args(argv)
        recorded = load_pretrained(alias).training_metadata["config"]
        steps = args.steps if args.steps is not None else DEFAULT_STEPS[args.model]
        if args.model == "gmm":
            assert (recorded["max_iter"], recorded["seed"]) == (steps, args.seed), alias
            continue
        assert recorded["steps"] == steps, alias
        for option, key in names.items():
            if key in recorded:
                assert getattr(args, option) == recorded[key], (alias, option, recorded[key])
