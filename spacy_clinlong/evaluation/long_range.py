"""Entity recall by distance from the section header: where long context pays.

In the synthetic notes, a drug in a MEDICATIONS list is a TREATMENT and the
same drug in an ALLERGIES list is an ALLERGEN; the item lines are written with
the same templates, so only the section header tells them apart, and the
header may lie hundreds of tokens before the item. A strided 128-wordpiece
window that holds the item but not the header cannot see it. Bucketing gold
entities by their distance (in spaCy tokens) from the start of their section
shows whether a reader uses that header: with long context, recall of the far
bucket should hold up; through strided windows it should fall.

`long_range_scores` works on any gold corpus whose docs carry labelled
sections in `doc.spans["sections"]` (`synth` writes them).
"""

from typing import Dict, List, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

# Bucket bounds in spaCy tokens from the section start: near <= 64 < mid <= 128 < far.
# Items beyond BEYOND tokens are also counted in a ">256" bucket (a part of far). A
# token is at least one wordpiece, so these are at least as far in wordpieces.
NEAR, MID, BEYOND = 64, 128, 256
LIST_SECTIONS: Tuple[str, ...] = ("ALLERGIES", "MEDICATIONS")
LIST_LABELS: Tuple[str, ...] = ("ALLERGEN", "TREATMENT")


def bucket_of(distance: int) -> str:
    """RETURNS (str): "near" (<= 64 tokens), "mid" (65-128) or "far" (> 128)."""
    return "near" if distance <= NEAR else "mid" if distance <= MID else "far"


def long_range_scores(
    nlp: Language,
    gold_docs: Sequence[Doc],
    *,
    sections: Sequence[str] = LIST_SECTIONS,
    labels: Sequence[str] = LIST_LABELS,
    batch_size: int = 4,
) -> Dict:
    """Score a pipeline's entities by distance from the section start.

    nlp (Language): A pipeline with an entity recognizer.
    gold_docs (Sequence[Doc]): Gold docs with `doc.ents` and labelled
        `doc.spans["sections"]`.
    sections (Sequence[str]): Section labels whose entities are counted.
    labels (Sequence[str]): Entity labels counted.
    batch_size (int): Docs per `nlp.pipe` batch.
    RETURNS (Dict): `longrange_far_recall` (recall over the far bucket, all
        labels), `longrange_far_n`, and `longrange_per_bucket`:
        "<LABEL> <bucket>" -> {"r": recall, "n": gold count}, plus
        "all <bucket>" over every counted label; ">256" counts the far items
        beyond 256 tokens once more. Exact-match recall: the
        predicted entity has the gold start, end and label.
    """
    if not gold_docs:
        raise ValueError("No gold docs to score")
    missing = [i for i, doc in enumerate(gold_docs) if "sections" not in doc.spans]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(gold_docs)} docs have no doc.spans['sections'] (first: doc {missing[0]}); "
            "long-range scores need labelled sections (python -m spacy_clinlong synth writes them)"
        )
    wanted_sections, wanted_labels = set(sections), set(labels)
    counts: Dict[str, List[int]] = {}
    texts = (doc.text for doc in gold_docs)
    for gold, pred in zip(gold_docs, nlp.pipe(texts, batch_size=batch_size)):
        if len(pred) != len(gold) or any(p.idx != g.idx for p, g in zip(pred, gold)):
            raise ValueError(
                "The pipeline's tokenizer splits a note differently from its gold doc "
                f"({len(pred)} vs {len(gold)} tokens); score with the tokenizer the gold was made with"
            )
        predicted = {(e.start, e.end, e.label_) for e in pred.ents}
        starts = sorted((s.start, s.end, s.label_) for s in gold.spans["sections"])
        for ent in gold.ents:
            if ent.label_ not in wanted_labels:
                continue
            section = next((s for s in starts if s[0] <= ent.start < s[1]), None)
            if section is None or section[2] not in wanted_sections:
                continue
            distance = ent.start - section[0]
            buckets = [bucket_of(distance)] + ([f">{BEYOND}"] if distance > BEYOND else [])
            hit = int((ent.start, ent.end, ent.label_) in predicted)
            keys = [f"{who} {bucket}" for bucket in buckets for who in (ent.label_, "all")]
            for key in keys:
                tally = counts.setdefault(key, [0, 0])
                tally[0] += 1
                tally[1] += hit
    per_bucket = {key: {"r": hits / n, "n": n} for key, (n, hits) in sorted(counts.items())}
    far = counts.get("all far", [0, 0])
    return {
        "longrange_far_recall": far[1] / far[0] if far[0] else None,
        "longrange_far_n": far[0],
        "longrange_per_bucket": per_bucket,
    }
