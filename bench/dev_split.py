"""The dev corpus split in two halves, so a rule is tuned on one and checked on the other.

Run as `.venv/bin/python bench/dev_split.py --half tune|check --out DIR`: DIR becomes a corpus of its own
(a `manifest.jsonl` of that half's entries beside links to the corpus folders), which
`../shared/tools/score.py --corpus DIR` scores like the whole. `--print` lists each document's half.

A document's half is fixed by a digest of its *source document*, not its file: the single pages cut from one
multi-page PDF (`cn-quarterly-p2`, `cn-quarterly-p7`) fall in the same half, so a rule fitted to one page
cannot be "checked" on its sibling. The rule needs no list kept by hand and holds for documents added later.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "dev"
HALVES = ("tune", "check")
# A page suffix that several files of one source document share: "-p7", "-pg9", "_page3".
_PAGE_SUFFIX = re.compile(r"(?:[-_]p(?:g|age)?\d+)$", re.IGNORECASE)


def source_document(entry_id: str) -> str:
    """The id of the document a manifest entry was cut from (its own id when it is whole)."""
    return _PAGE_SUFFIX.sub("", entry_id)


def half_of(entry_id: str) -> str:
    """`tune` or `check`, from the first byte of the source document's SHA-256."""
    digest = hashlib.sha256(source_document(entry_id).encode("utf-8")).digest()
    return HALVES[digest[0] % 2]


def entries(corpus: Path) -> list[dict]:
    lines = (corpus / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_half(corpus: Path, half: str, out: Path) -> int:
    """Make `out` a corpus holding one half: its manifest, and links to the folders its files live in."""
    chosen = [e for e in entries(corpus) if half_of(e["id"]) == half]
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in chosen), encoding="utf-8")
    for folder in sorted({e["pdf"].split("/", 1)[0] for e in chosen}):
        link = out / folder
        if not link.exists():
            link.symlink_to((corpus / folder).resolve(), target_is_directory=True)
    return len(chosen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a corpus folder with manifest.jsonl")
    parser.add_argument("--half", choices=HALVES)
    parser.add_argument("--out", type=Path, help="where the half's corpus is made")
    parser.add_argument("--print", action="store_true", help="list every entry with its half")
    args = parser.parse_args()
    if not (args.corpus / "manifest.jsonl").is_file():
        parser.error(f"no manifest.jsonl under {args.corpus}")
    if args.print:
        for entry in entries(args.corpus):
            sys.stdout.write(f"{half_of(entry['id'])}\t{entry['id']}\n")
        return 0
    if not args.half or not args.out:
        parser.error("--half and --out go together (or use --print)")
    count = write_half(args.corpus, args.half, args.out)
    sys.stdout.write(f"{args.half}: {count} entries in {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
