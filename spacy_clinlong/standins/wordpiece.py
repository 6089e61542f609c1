"""Train the four tokenizer kinds of the supported checkpoints, offline.

Each trainer learns a vocabulary from local text, saves it into a directory with
`save_pretrained` and returns the tokenizer loaded back with `AutoTokenizer`, so
the files are exactly what a hub checkpoint of that family ships:

- longformer: byte-level BPE (`vocab.json` + `merges.txt`), RoBERTa specials
  <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last (LongformerTokenizerFast).
- bigbird: SentencePiece unigram (`spiece.model`) with the ids of
  google/bigbird-roberta-base: <pad>=0 <s>=1 </s>=2 [CLS]=65 [SEP]=66
  [MASK]=67 <unk>=100 (BigBirdTokenizerFast).
- modernbert: byte-level BPE in a `tokenizer.json` with [UNK] [CLS] [SEP]
  [PAD] [MASK] right after the learned vocabulary, `[CLS] $A [SEP]`
  post-processing (PreTrainedTokenizerFast), as answerdotai/ModernBERT-base.
- bert: cased WordPiece (`vocab.txt`) with the ids of bert-base-cased:
  [PAD]=0 [UNK]=100 [CLS]=101 [SEP]=102 [MASK]=103 (BertTokenizerFast).

The slow-format files (vocab.json, spiece.model, vocab.txt) are converted to fast
tokenizers by transformers' own converters, the same code path a hub checkpoint
without a tokenizer.json takes.
"""

import io
import json
import string
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import sentencepiece
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoTokenizer,
    BertTokenizerFast,
    BigBirdTokenizerFast,
    LongformerTokenizerFast,
    PreTrainedTokenizerFast,
)

# A pair must occur twice to become a merge: one-off strings (ids, dates) stay split.
MIN_FREQUENCY = 2
# Filler names for reserved ids, as in bert-base-cased's vocab.txt.
UNUSED = "[unused{}]"
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
MODERNBERT_SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
BIGBIRD_IDS = {"<pad>": 0, "<s>": 1, "</s>": 2, "[CLS]": 65, "[SEP]": 66, "[MASK]": 67, "<unk>": 100}
BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
WordCounts = Sequence[Tuple[str, int]]

# Characters every tokenizer gets a piece for even when the training text lacks
# them: a small synthetic corpus must not turn "°", "µg" or "é" into [UNK] words.
ALPHABET = (
    string.ascii_letters
    + string.digits
    + string.punctuation
    + "".join(chr(c) for c in range(0xA1, 0x100) if chr(c).isprintable())
    + "αβγδεκλμπσωΔ–—‘’“”•…‰†‡→←↑↓≤≥≈≠×÷±√∞"
)


def reserved_layout(named_ids: Dict[str, int]) -> List[str]:
    """List the tokens of ids 0..max(id) with fillers in the gaps.

    named_ids (Dict[str, int]): Token text to the id it must have.
    RETURNS (List[str]): Token of each id, "[unusedN]" where none is named.
    """
    by_id = {i: tok for tok, i in named_ids.items()}
    return [by_id.get(i, UNUSED.format(i)) for i in range(max(by_id) + 1)]


def _primer() -> List[str]:
    """Training lines that put each ALPHABET character in word-initial and
    word-internal position, so WordPiece learns both "c" and "##c".

    RETURNS (List[str]): One short line per character.
    """
    return [f"{c} x{c}" for c in ALPHABET]


def _with_words(texts: Sequence[str], word_counts: WordCounts) -> List[str]:
    """Training texts for the BPE and WordPiece trainers: texts, then word_counts
    as lines of words, each word as often as its count (they take no counts)."""
    from .wordfreq import word_lines

    return list(texts) + list(word_lines(word_counts))


def _save_and_reload(tokenizer: PreTrainedTokenizerFast, output_dir: Path) -> PreTrainedTokenizerFast:
    tokenizer.save_pretrained(str(output_dir))
    # Load back the way users will, so what we return is what the files say.
    return AutoTokenizer.from_pretrained(str(output_dir))


def train_longformer(
    texts: Sequence[str],
    output_dir: Path,
    *,
    vocab_size: int,
    model_max_length: int,
    word_counts: WordCounts = (),
) -> PreTrainedTokenizerFast:
    """Train a RoBERTa-style byte-level BPE tokenizer (LongformerTokenizerFast).

    texts (Sequence[str]): Training texts.
    output_dir (Path): Directory to save the tokenizer files into.
    vocab_size (int): Most tokens before <mask>, the four specials included.
    model_max_length (int): Longest input the model accepts, in tokens.
    word_counts (Sequence[Tuple[str, int]]): More training words, as (word, count).
    RETURNS (PreTrainedTokenizerFast): The tokenizer loaded back from output_dir.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        special_tokens=ROBERTA_SPECIALS,
        # All 256 byte symbols: any input, NUL and emoji included, is encodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_with_words(texts, word_counts), trainer)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = bpe.model.save(tmp)
        # <mask> belongs in vocab.json as the last id, as in roberta-base; left
        # out, transformers would add it through an extra added_tokens.json.
        vocab = json.loads(Path(vocab_file).read_text(encoding="utf8"))
        vocab["<mask>"] = len(vocab)
        Path(vocab_file).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf8")
        tokenizer = LongformerTokenizerFast(
            vocab_file=vocab_file, merges_file=merges_file, model_max_length=model_max_length
        )
        return _save_and_reload(tokenizer, output_dir)


def train_bigbird(
    texts: Sequence[str],
    output_dir: Path,
    *,
    vocab_size: int,
    model_max_length: int,
    word_counts: WordCounts = (),
) -> PreTrainedTokenizerFast:
    """Train a SentencePiece unigram model (spiece.model, BigBirdTokenizerFast).

    texts (Sequence[str]): Training texts.
    output_dir (Path): Directory to save the tokenizer files into.
    vocab_size (int): Most pieces, reserved ids included; a soft limit, so a
        small corpus gives fewer.
    model_max_length (int): Longest input the model accepts, in tokens.
    word_counts (Sequence[Tuple[str, int]]): More training words, as (word, count).
    RETURNS (PreTrainedTokenizerFast): The tokenizer loaded back from output_dir.
    """
    layout = reserved_layout(BIGBIRD_IDS)
    fixed = {"<pad>", "<s>", "</s>", "<unk>"}
    # SentencePiece hands control symbols the free low ids in order, which puts
    # [CLS] [SEP] [MASK] and the fillers exactly where bigbird-roberta-base has them.
    control = [tok for tok in layout if tok not in fixed]
    # SentencePiece skips lines over max_sentence_length bytes, so feed lines.
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    # Set only with word_counts: spiece.model records it, and without them the
    # file stays byte for byte what it was before word_counts existed.
    options = {}
    if word_counts:
        # As `sentence<TAB>count` lines SentencePiece reads each word once, not count times.
        lines = [line.replace("\t", " ") + "\t1" for line in lines]
        lines += [f"{word}\t{count}" for word, count in word_counts]
        options["input_format"] = "tsv"
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=BIGBIRD_IDS["<pad>"],
        bos_id=BIGBIRD_IDS["<s>"],
        eos_id=BIGBIRD_IDS["</s>"],
        unk_id=BIGBIRD_IDS["<unk>"],
        pad_piece="<pad>",
        bos_piece="<s>",
        eos_piece="</s>",
        unk_piece="<unk>",
        control_symbols=control,
        character_coverage=1.0,
        required_chars=ALPHABET,
        # One thread and no sampling: the same text gives the same spiece.model.
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
        **options,
    )
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "spiece.model"
        vocab_file.write_bytes(model.getvalue())
        tokenizer = BigBirdTokenizerFast(vocab_file=str(vocab_file), model_max_length=model_max_length)
        return _save_and_reload(tokenizer, output_dir)


def train_modernbert(
    texts: Sequence[str],
    output_dir: Path,
    *,
    vocab_size: int,
    model_max_length: int,
    word_counts: WordCounts = (),
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer.json like answerdotai/ModernBERT-base's.

    The learned vocabulary is padded with "[unusedN]" fillers up to vocab_size,
    so the specials land at fixed ids: [UNK]=vocab_size, [CLS]=vocab_size+1,
    [SEP]=+2, [PAD]=+3, [MASK]=+4 (50280..50284 in the real checkpoint).

    texts (Sequence[str]): Training texts.
    output_dir (Path): Directory to save the tokenizer files into.
    vocab_size (int): Id of the first special token.
    model_max_length (int): Longest input the model accepts, in tokens.
    word_counts (Sequence[Tuple[str, int]]): More training words, as (word, count).
    RETURNS (PreTrainedTokenizerFast): The tokenizer loaded back from output_dir.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_with_words(texts, word_counts), trainer)
    learned = json.loads(bpe.to_str())["model"]
    vocab: Dict[str, int] = dict(learned["vocab"])
    # Fillers have no merge that produces them, so the model never emits them.
    for i in range(len(vocab), vocab_size):
        vocab[UNUSED.format(i)] = i
    if sorted(vocab.values()) != list(range(vocab_size)):
        # A learned token spelled like a filler would leave a hole in the ids.
        raise ValueError(
            f"Learned vocabulary of {len(learned['vocab'])} does not pad to {vocab_size} distinct ids"
        )
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=(t == "[MASK]")) for t in MODERNBERT_SPECIALS]
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        # ModernBertModel.forward takes no token_type_ids.
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=True,
    )
    return _save_and_reload(tokenizer, output_dir)


def train_bert(
    texts: Sequence[str],
    output_dir: Path,
    *,
    vocab_size: int,
    model_max_length: int,
    word_counts: WordCounts = (),
) -> PreTrainedTokenizerFast:
    """Train a cased WordPiece vocab.txt (BertTokenizerFast, do_lower_case=False).

    texts (Sequence[str]): Training texts.
    output_dir (Path): Directory to save the tokenizer files into.
    vocab_size (int): Most entries, the 104 reserved ones included.
    model_max_length (int): Longest input the model accepts, in tokens.
    word_counts (Sequence[Tuple[str, int]]): More training words, as (word, count).
    RETURNS (PreTrainedTokenizerFast): The tokenizer loaded back from output_dir.
    """
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # Train with the normalizer and pre-tokenizer BertTokenizerFast applies.
    wordpiece.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = _with_words(texts, word_counts) + _primer()
    # The trainer numbers "##c" pieces in hash-map order, and ids break ties
    # between equally frequent merges, so two runs could learn different
    # vocabularies. Listing every "##c" up front, sorted, fixes their ids.
    chars = sorted({c for text in texts for c in text if not c.isspace()})
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        special_tokens=reserved_layout(BERT_IDS) + ["##" + c for c in chars],
        show_progress=False,
    )
    wordpiece.train_from_iterator(texts, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        (vocab_file,) = wordpiece.model.save(tmp)
        tokenizer = BertTokenizerFast(
            vocab_file=vocab_file, do_lower_case=False, model_max_length=model_max_length
        )
        return _save_and_reload(tokenizer, output_dir)


TRAINERS: Dict[str, Callable[..., PreTrainedTokenizerFast]] = {
    "longformer": train_longformer,
    "bigbird": train_bigbird,
    "modernbert": train_modernbert,
    "bert": train_bert,
}


def train_tokenizer(
    arch: str,
    texts: Sequence[str],
    output_dir: Path,
    *,
    vocab_size: int,
    model_max_length: int,
    word_counts: WordCounts = (),
) -> PreTrainedTokenizerFast:
    """Train the tokenizer kind of `arch` and save it into output_dir.

    arch (str): One of "longformer", "bigbird", "modernbert", "bert".
    texts (Sequence[str]): Training texts.
    output_dir (Path): Directory to save the tokenizer files into.
    vocab_size (int): Vocabulary target; see each train_* function.
    model_max_length (int): Longest input the model accepts, in tokens.
    word_counts (Sequence[Tuple[str, int]]): More training words, as (word, count).
    RETURNS (PreTrainedTokenizerFast): The tokenizer loaded back from output_dir.
    """
    if arch not in TRAINERS:
        raise ValueError(f"Unknown arch {arch!r}; expected one of {sorted(TRAINERS)}")
    return TRAINERS[arch](
        texts,
        Path(output_dir),
        vocab_size=vocab_size,
        model_max_length=model_max_length,
        word_counts=word_counts,
    )
