"""Window planning and token-to-window alignment, without a model."""

import numpy
import pytest
import spacy

from spacy_clinlong.models.encoder import plan_batches
from spacy_clinlong.models.long_spans import (
    align_tokens_to_windows,
    configure_long_spans,
    token_cut_points,
)
from spacy_clinlong.models.pieces import align_pieces


def _one_piece_per_token(doc):
    """An aligned DocPieces where each token is exactly one wordpiece."""
    ids = list(range(len(doc)))
    offsets = [(t.idx, t.idx + len(t)) for t in doc]
    return align_pieces(doc, ids, offsets)


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def test_note_that_fits_is_one_span(nlp):
    doc = nlp("Patient denies chest pain. No fever.")
    pieces = _one_piece_per_token(doc)
    assert configure_long_spans(overlap=4)(doc, pieces, len(doc)) == [(0, len(doc))]


def test_long_note_windows_cover_everything_at_sentence_boundaries(nlp):
    sentence = "The patient was seen on the ward today ."
    doc = nlp(" ".join([sentence] * 60))
    pieces = _one_piece_per_token(doc)
    budget, overlap = 64, 16
    windows = configure_long_spans(overlap=overlap)(doc, pieces, budget)
    assert len(windows) > 1
    assert windows[0][0] == 0 and windows[-1][1] == pieces.n_wordpieces
    for (s1, e1), (s2, _e2) in zip(windows, windows[1:]):
        assert e1 - s1 <= budget
        assert s1 < s2 <= e1, "windows must overlap or touch, never leave a gap"
        assert overlap <= e1 - s2 <= 2 * overlap + len(sentence.split())
        # sentence starts: the token after "."
        assert doc[int(pieces.first_token[e1 - 1])].text == "."
        assert doc[int(pieces.first_token[s2 - 1])].text == "."


def test_sentence_without_boundaries_is_cut_at_tokens_then_inside_tokens(nlp):
    doc = nlp(" ".join(["word"] * 300))
    pieces = _one_piece_per_token(doc)
    windows = configure_long_spans(overlap=8)(doc, pieces, 50)
    assert all(e - s <= 50 for s, e in windows)
    assert windows[-1][1] == 300
    # One token of 500 wordpieces: cut inside it, every piece covered.
    doc = nlp("x" * 500)
    pieces = align_pieces(doc, list(range(500)), [(i, i + 1) for i in range(500)])
    assert token_cut_points(pieces).size == 0
    windows = configure_long_spans(overlap=8)(doc, pieces, 64)
    covered = numpy.zeros(500, dtype=bool)
    for s, e in windows:
        assert e - s <= 64
        covered[s:e] = True
    assert covered.all()


def test_each_token_reads_the_window_with_most_context(nlp):
    doc = nlp(" ".join(str(i) for i in range(100)))
    pieces = _one_piece_per_token(doc)
    windows = [(0, 60), (40, 100)]
    al = align_tokens_to_windows(pieces, windows, n_prefix=1, row_length=62)
    rows = al.align_data
    assert (al.align_lengths == 1).all()
    window_of = rows // 62
    # Token 45 has min(45, 14) = 14 in window 0 and min(5, 54) = 5 in window 1.
    assert window_of[45] == 0
    # Token 55: min(55, 4) = 4 vs min(15, 44) = 15: window 1.
    assert window_of[55] == 1
    assert window_of[10] == 0 and window_of[90] == 1
    # Rows point at the token's own piece: position = 1 + piece - window start.
    assert rows[55] == 62 + 1 + 55 - 40


def test_tokens_without_pieces_borrow_a_neighbour(nlp):
    doc = nlp("alpha \n\n beta")
    # The tokenizer gives nothing for the whitespace token.
    ids = [7, 8]
    offsets = [(0, 5), (doc[-1].idx, doc[-1].idx + 4)]
    pieces = align_pieces(doc, ids, offsets)
    assert pieces.token_first_wp.tolist() == [0, 0, 1]
    assert (pieces.token_last_wp >= 0).all()
    empty = align_pieces(nlp("   "), [], [])
    al = align_tokens_to_windows(empty, [(0, 0)], n_prefix=1, row_length=2)
    assert al.align_lengths.tolist() == [1] and al.align_data.tolist() == [0]


def test_piece_spanning_two_tokens_aligns_to_both(nlp):
    doc = nlp("don't")
    assert [t.text for t in doc] == ["do", "n't"]
    pieces = align_pieces(doc, [1, 2], [(0, 3), (3, 5)])
    assert pieces.first_token.tolist() == [0, 1] and pieces.last_token.tolist() == [1, 1]
    assert pieces.token_first_wp.tolist() == [0, 0]
    assert pieces.token_last_wp.tolist() == [0, 1]
    assert token_cut_points(pieces).size == 0


def test_batches_are_length_sorted_within_a_wordpiece_budget():
    lengths = [4096, 300, 310, 4000, 50, 305]
    batches = plan_batches(lengths, budget=8192, pad_multiple=32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        padded = ((longest + 31) // 32) * 32
        assert padded * len(batch) <= 8192 or len(batch) == 1
    # The long notes never share a batch with the short ones.
    short = {1, 2, 4, 5}
    for batch in batches:
        assert set(batch) <= short or not (set(batch) & short)


def test_a_short_window_never_pads_to_a_long_one():
    # Two notes of two windows each: the long first windows batch together, the short last
    # windows too, where the budget alone would have padded a short one to 4,096.
    lengths = [4096, 1400, 4096, 1500, 4000]
    batches = plan_batches(lengths, budget=16384, pad_multiple=8)
    assert batches == [[0, 2, 4], [3, 1]]
    assert plan_batches([1000, 790, 810], budget=16384, pad_multiple=8) == [[0, 2], [1]]
    assert plan_batches([1000, 790], budget=16384, pad_multiple=8, min_fill=0.5) == [[0, 1]]


def test_span_getter_rejects_bad_settings():
    with pytest.raises(ValueError, match="overlap"):
        configure_long_spans(overlap=-1)
    with pytest.raises(ValueError, match="min_fill"):
        configure_long_spans(min_fill=0)


def test_on_cpu_an_encoder_call_holds_one_long_window(trf_nlp, tiny_models):
    from spacy_clinlong.models.encoder import CPU_CALL_WORDPIECES, WindowInput, plan_windows

    model = trf_nlp(tiny_models("longformer")).get_pipe("transformer").model
    assert model.attrs["batch_wordpieces"] == 16384

    def windows(*lengths):
        return [WindowInput(ids=numpy.ones(n, dtype="int64"), global_positions=[0]) for n in lengths]

    assert plan_windows(model, windows(4096, 4096, 4000)) == [[0], [1], [2]]
    assert plan_windows(model, windows(*[500] * 8)) == [list(range(8))]
    assert all(512 * len(call) <= CPU_CALL_WORDPIECES for call in plan_windows(model, windows(*[500] * 20)))
    # A budget given by the caller (QA's) is kept.
    assert plan_windows(model, windows(4096, 4096), budget=8192) == [[0, 1]]


def test_short_windows_of_one_padded_length_share_a_batch():
    # Padded to 16, a 9-wordpiece window fills the batch as much as a 16-wordpiece one.
    assert plan_batches([16, 9, 9, 12], budget=4096, pad_multiple=8) == [[0, 3, 1, 2]]
    assert plan_batches([500, 100, 90], budget=4096, pad_multiple=512) == [[0, 1, 2]]
