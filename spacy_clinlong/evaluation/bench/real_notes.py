"""The benchmark's default notes: real clinical text that needs one, two and three windows.

MTSamples transcriptions (CC0, public domain: the Kaggle "Medical Transcriptions"
set), taken only from the 300 notes the base stand-ins' word list holds out
(`standins.wordfreq.dedupe_and_split`), so no tokenizer has learnt them. A note
that must fill two or three 4,096-wordpiece windows is several transcriptions
joined by blank lines, as a patient's notes are concatenated into one document.
At about 1.45 wordpieces per word (the base stand-ins' and the real checkpoints'
rate on this text), the groups' word ranges give one, two and three Longformer
windows.

Regenerate the shipped file (byte for byte) with
`python -m spacy_clinlong.evaluation.bench.real_notes MTSAMPLES.csv`.
"""

import gzip
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

NOTES_FILE = Path(__file__).parent / "data" / "mtsamples_bench.jsonl.gz"
# Group name -> (fewest, most) whitespace words of a note in it.
GROUPS: Dict[str, Tuple[int, int]] = {
    "1 window": (1_400, 2_600),
    "2 windows": (3_300, 5_000),
    "3 windows": (6_000, 7_800),
}
PER_GROUP = 8
SOURCE = "MTSamples (CC0), notes held out of the stand-in word list"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf8")).hexdigest()


def build_bench_notes(held_out: Sequence[str], *, per_group: int = PER_GROUP) -> List[Dict[str, object]]:
    """Join held-out transcriptions, in order, into notes of each group's length.

    held_out (Sequence[str]): Transcriptions no tokenizer was trained on.
    per_group (int): Notes per group.
    RETURNS (List[Dict[str, object]]): Notes: text, group, words, sources (sha256 prefixes).
    """
    pool = [t.strip() for t in held_out if t.strip()]
    notes: List[Dict[str, object]] = []
    position = 0
    for group, (low, high) in GROUPS.items():
        for _ in range(per_group):
            parts: List[str] = []
            words = 0
            while words < low:
                if position >= len(pool):
                    raise ValueError(
                        f"{len(pool)} transcriptions are too few for {per_group} notes per group"
                    )
                text = pool[position]
                position += 1
                n = len(text.split())
                if words + n > high:
                    continue  # it would overshoot the group: skip it (it goes into no note)
                parts.append(text)
                words += n
            notes.append(
                {
                    "group": group,
                    "words": words,
                    "sources": [_sha(p)[:12] for p in parts],
                    "text": "\n\n".join(parts),
                }
            )
    return notes


def write_bench_notes(notes: Iterable[Dict[str, object]], path: Path = NOTES_FILE) -> Path:
    """Write notes as gzipped JSON lines, with no timestamp, so a rebuild is byte-identical."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        with io.TextIOWrapper(gz, encoding="utf8", newline="\n") as out:
            for note in notes:
                out.write(json.dumps(note, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def read_bench_notes(groups: Optional[Sequence[str]] = None, path: Path = NOTES_FILE) -> Dict[str, List[str]]:
    """The shipped benchmark notes, by group.

    groups (Optional[Sequence[str]]): Groups to keep (names of GROUPS); None for all.
    path (Path): The notes file.
    RETURNS (Dict[str, List[str]]): Note texts per group, in GROUPS' order.
    """
    if groups is not None and not groups:
        raise ValueError(f"No note groups chosen; expected some of {list(GROUPS)}")
    unknown = sorted(set(groups or ()) - set(GROUPS))
    if unknown:
        raise ValueError(f"Unknown note groups {unknown}; expected some of {list(GROUPS)}")
    by_group: Dict[str, List[str]] = {g: [] for g in GROUPS if groups is None or g in groups}
    with gzip.open(path, "rt", encoding="utf8") as lines:
        for line in lines:
            note = json.loads(line)
            if note["group"] in by_group:
                by_group[note["group"]].append(note["text"])
    return by_group


def main(argv: Sequence[str]) -> None:
    """`python -m spacy_clinlong.evaluation.bench.real_notes MTSAMPLES.csv [OUTPUT]`."""
    from ...standins.wordfreq import dedupe_and_split, read_mtsamples

    if len(argv) not in (1, 2):
        raise SystemExit("usage: python -m spacy_clinlong.evaluation.bench.real_notes MTSAMPLES.csv [OUTPUT]")
    _, held_out = dedupe_and_split(read_mtsamples(Path(argv[0])))
    notes = build_bench_notes(held_out)
    path = write_bench_notes(notes, Path(argv[1]) if len(argv) == 2 else NOTES_FILE)
    for group in GROUPS:
        words = [n["words"] for n in notes if n["group"] == group]
        print(f"{group}: {len(words)} notes, {min(words)}-{max(words)} words")
    print(f"Wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
