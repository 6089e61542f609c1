"""The full clinical pipeline now against the package as it was at git e3d04e6: one timed pass.

    git worktree add ../clinlong-e3d04e6 e3d04e6
    # the package as it was (transformer, ner, add_medspacy's defaults then: PyRuSH and
    # medspaCy's doc consumer); the code is taken from the checkout, everything else from
    # this environment
    PYTHONPATH="$(cd ../clinlong-e3d04e6 && pwd)" python docs/pipeline-then-now.py then "2 windows" 8 MODEL_DIR
    # this package: the benchmark's `--pipeline fast` pipeline, fp32 or int8
    python docs/pipeline-then-now.py int8 "2 windows" 8 MODEL_DIR

MODEL_DIR is the benchmark's base Longformer stand-in (`python -m spacy_clinlong make-model
MODEL_DIR --arch longformer --size base`, or ~/.cache/spacy-clinlong/bench-models/longformer-base
after a `benchmark` run). `then` refuses to run this checkout's code. Both
pipelines get the same ner head (untrained, three labels) and the same medspaCy target rules
(`evaluation.bench.systems.CLINICAL_TERMS`), read the benchmark's real notes of one group
after a one-note warm-up, and print one JSON line: seconds, words (spaCy tokens), words/s,
notes/s. Run the modes alternately (then, int8, fp32, then, ...): docs/speed.md.
"""

import gzip
import json
import sys
import time
import warnings
from pathlib import Path

LABELS = ("PROBLEM", "TREATMENT", "TEST")
HERE = Path(__file__).resolve().parent.parent
NOTES = HERE / "spacy_clinlong" / "evaluation" / "bench" / "data" / "mtsamples_bench.jsonl.gz"
SYSTEMS = HERE / "spacy_clinlong" / "evaluation" / "bench" / "systems.py"


def clinical_terms():
    """CLINICAL_TERMS as this checkout defines them (the old checkout has none)."""
    source = SYSTEMS.read_text()
    start = source.index("CLINICAL_TERMS = {")
    end = source.index("\n}\n", start) + 2
    namespace = {}
    exec(source[start:end], namespace)
    return namespace["CLINICAL_TERMS"]


def keep_only_importable_entry_points():
    """The installed package's entry points name modules the old checkout lacks, and
    spaCy imports every entry point of a group: drop this package's missing ones."""
    import importlib.util

    import catalogue

    def importable(entry_point):
        module = entry_point.value.split(":")[0]
        if not module.startswith("spacy_clinlong"):
            return True
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False

    found = catalogue.AVAILABLE_ENTRY_POINTS
    if isinstance(found, dict):  # Python < 3.12: entry points by group
        for group in list(found):
            found[group] = [ep for ep in found[group] if importable(ep)]
    else:  # Python >= 3.12: one EntryPoints collection
        catalogue.AVAILABLE_ENTRY_POINTS = type(found)(ep for ep in found if importable(ep))


def pipeline_then(model_dir):
    import spacy
    from medspacy.target_matcher import TargetRule

    from spacy_clinlong.integrations.medspacy import add_medspacy

    nlp = spacy.blank("en")
    nlp.max_length = 10**7
    model = {"@architectures": "spacy-clinlong.LongTransformerModel.v1", "name": model_dir}
    nlp.add_pipe("transformer", config={"model": model, "max_batch_items": 262144})
    listener = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "pooling": {"@layers": "reduce_mean.v1"},
    }
    ner = nlp.add_pipe("ner", config={"model": {"tok2vec": listener}})
    for label in LABELS:
        ner.add_label(label)
    rules = [TargetRule(term, label) for label, terms in clinical_terms().items() for term in terms]
    add_medspacy(nlp, target_rules=rules)
    nlp.add_pipe("clinlong_drop_trf_data")
    nlp.initialize()
    return nlp


def pipeline_now(model_dir, mode):
    from spacy_clinlong.evaluation.bench.systems import SYSTEMS_BY_KEY, build_pipeline

    system = SYSTEMS_BY_KEY["longformer-int8" if mode == "int8" else "longformer"]
    return build_pipeline(system, Path(model_dir), gpu=False, clinical="fast")


def main(mode, group, batch_size, model_dir):
    warnings.simplefilter("ignore")
    if mode not in ("then", "fp32", "int8"):
        raise SystemExit(f"mode must be then, fp32 or int8, not {mode!r}")
    with gzip.open(NOTES, "rt", encoding="utf8") as f:
        texts = [note["text"] for note in map(json.loads, f) if note["group"] == group]
    if not texts:
        raise SystemExit(f"no notes in group {group!r}")
    if mode == "then":
        import spacy_clinlong

        if Path(spacy_clinlong.__file__).resolve().parent.parent == HERE:
            raise SystemExit("then: spacy_clinlong is this checkout's; put the old checkout on PYTHONPATH")
        keep_only_importable_entry_points()
        nlp = pipeline_then(model_dir)
    else:
        nlp = pipeline_now(model_dir, mode)
    import spacy_clinlong

    list(nlp.pipe(texts[:1]))
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    words = sum(len(doc) for doc in docs)
    record = {
        "mode": mode,
        "group": group,
        "batch_size": batch_size,
        "s": round(seconds, 2),
        "words": words,
        "words_s": round(words / seconds, 1),
        "notes_s": round(len(docs) / seconds, 4),
        "pipes": nlp.pipe_names,
        "package": str(Path(spacy_clinlong.__file__).parent),
    }
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
