"""Speed and memory of whole-note pipelines against spaCy's strided windows.

One run, the same notes, the systems alternating repeat by repeat:

- (a) this package's long-span pipeline (`spacy-clinlong.LongTransformerModel.v1`)
  over Longformer (fp32, and int8 on CPU), BigBird and ModernBERT;
- (b) stock spacy-transformers, strided 128/96 spans, over BERT: the baseline
  every ratio is taken against;
- (c) stock spacy-transformers, whole-note spans (`doc_spans.v1`), over Hugging
  Face's own Longformer.

Each system is warmed up, then reads every note `repeats` times, as
`spacy benchmark speed` does; words/s is reported per repeat (mean, min, max),
with wordpieces/s, p50/p95 latency per note (the time of the batch that holds
it), peak RSS and CUDA max allocated. Models are random-weight stand-ins built
by `make-model` (speed does not depend on the weights) unless given.

The default notes are real clinical text shipped with the package (real_notes.py:
MTSamples, CC0) that needs one, two and three Longformer windows; `run_groups` runs
each group at each batch size. `clinical` adds an ner head and medspaCy's rules
after every system's transformer: the full clinical pipeline.
"""

from .measure import (
    Measured,
    RssSampler,
    corpus_memory,
    machine_facts,
    run_benchmark,
    run_groups,
    run_once,
    synthetic_stream,
)
from .real_notes import GROUPS, read_bench_notes
from .report import (
    check_targets,
    format_groups_table,
    format_table,
    machine_line,
    plot,
    plot_groups,
    write_report,
)
from .systems import (
    BASELINE,
    CLINICAL_CHOICES,
    CLINICAL_LABELS,
    SYSTEM_KEYS,
    SYSTEMS,
    SYSTEMS_BY_KEY,
    System,
    build_pipeline,
    count_wordpieces,
    ensure_models,
    fits_whole,
)

__all__ = [
    "BASELINE",
    "CLINICAL_CHOICES",
    "CLINICAL_LABELS",
    "SYSTEMS",
    "SYSTEMS_BY_KEY",
    "SYSTEM_KEYS",
    "System",
    "build_pipeline",
    "count_wordpieces",
    "ensure_models",
    "fits_whole",
    "Measured",
    "RssSampler",
    "corpus_memory",
    "machine_facts",
    "machine_line",
    "run_benchmark",
    "run_groups",
    "run_once",
    "GROUPS",
    "read_bench_notes",
    "format_groups_table",
    "plot_groups",
    "synthetic_stream",
    "check_targets",
    "format_table",
    "plot",
    "write_report",
]
