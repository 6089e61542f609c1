"""The training configs in configs/, generated from one place.

Each task (ner, textcat_multilabel, qa) has one complete `spacy train` config
per model: the three long-context clinical models through
`spacy-clinlong.LongTransformerModel.v1`, and the ClinicalBERT baseline
through spacy-transformers' stock strided 128/96 windows. `configs/` holds the
rendered files (a test keeps them in step); `python -m spacy_clinlong configs
DIR` writes them anew.
"""

from pathlib import Path
from typing import Dict, List, NamedTuple


class ModelSpec(NamedTuple):
    hub_id: str
    strided: bool
    doc_pooling: str
    about: str
    # the make-model --arch whose tiny build stands in for the checkpoint offline
    arch: str


MODELS: Dict[str, ModelSpec] = {
    "longformer": ModelSpec(
        "yikuan8/Clinical-Longformer", False, "cls", "Clinical-Longformer (4,096 wordpieces)", "longformer"
    ),
    "bigbird": ModelSpec(
        "yikuan8/Clinical-BigBird", False, "cls", "Clinical-BigBird (4,096 wordpieces)", "bigbird"
    ),
    "modernbert": ModelSpec(
        "Simonlee711/Clinical_ModernBERT",
        False,
        "mean",
        "Clinical ModernBERT (8,192 wordpieces)",
        "modernbert",
    ),
    "clinicalbert_strided": ModelSpec(
        "emilyalsentzer/Bio_ClinicalBERT",
        True,
        "mean",
        "Bio_ClinicalBERT through strided 128/96 windows (baseline)",
        "bert",
    ),
}
TASKS = ("ner", "textcat_multilabel", "qa", "ner_textcat")
# ner_textcat: ner and textcat_multilabel listening to one transformer, trained together
# (one encoder pass serves both heads, as spaCy's trf pipelines share theirs).

# Settings of the encoder call shared by the long-span transformer and QA blocks.
_ENCODER_SETTINGS = """# padded wordpieces per encoder call
batch_wordpieces = 16384
mixed_precision = false
gradient_checkpointing = false
# "fast": attention computing only what Longformer, BigBird and ModernBERT need, with
# Hugging Face's weights and outputs; "hf": Hugging Face's own code
attention = "fast"
tokenizer_config = {{"use_fast": true}}
transformer_config = {{}}
grad_scaler_config = {{}}
"""

_LONG_TRANSFORMER = (
    """
[components.transformer]
factory = "transformer"
# Counted in spaCy tokens by spacy-transformers; kept large so that the model
# itself batches by wordpieces (batch_wordpieces below).
max_batch_items = 262144

[components.transformer.model]
@architectures = "spacy-clinlong.LongTransformerModel.v1"
name = "{hub_id}"
# null: the model's own budget
max_length = null
"""
    + _ENCODER_SETTINGS
    + """
[components.transformer.model.get_spans]
@span_getters = "spacy-clinlong.long_spans.v1"
overlap = 128
min_fill = 0.5

[components.transformer.model.global_attention]
@misc = "spacy-clinlong.global_attention_cls.v1"

[components.transformer.set_extra_annotations]
@annotation_setters = "spacy-transformers.null_annotation_setter.v1"
"""
)

_STRIDED_TRANSFORMER = """
[components.transformer]
factory = "transformer"
max_batch_items = 4096

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "{hub_id}"
mixed_precision = false
tokenizer_config = {{"use_fast": true}}
transformer_config = {{}}
grad_scaler_config = {{}}

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96

[components.transformer.set_extra_annotations]
@annotation_setters = "spacy-transformers.null_annotation_setter.v1"
"""

_NER = """
[components.ner]
factory = "ner"
incorrect_spans_key = null
moves = null
scorer = {"@scorers":"spacy.ner_scorer.v1"}
update_with_oracle_cut_size = 100

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = false
nO = null

[components.ner.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
pooling = {"@layers":"reduce_mean.v1"}
upstream = "*"
"""

_TEXTCAT = """
[components.textcat_multilabel]
factory = "textcat_multilabel"
threshold = 0.5
scorer = {{"@scorers":"spacy.textcat_multilabel_scorer.v2"}}

# spaCy's bag-of-words and the whole-note vector, one output layer over both
# (spacy-clinlong.WholeNoteTextCat.v1 is the note vector alone)
[components.textcat_multilabel.model]
@architectures = "spacy-clinlong.WholeNoteTextCatEnsemble.v1"
hidden_width = 0
dropout = 0.1
# the bag of words' learning rate over the transformer's (1e-3 vs 5e-5)
linear_scale = 20.0
nO = null

[components.textcat_multilabel.model.linear_model]
@architectures = "spacy.TextCatBOW.v3"
exclusive_classes = false
length = 262144
ngram_size = 1
no_output_layer = true
nO = null

[components.textcat_multilabel.model.doc_encoder]
@architectures = "spacy-clinlong.DocPoolingListener.v1"
# cls: the first token of the note (global attention); mean: every wordpiece
pooling = "{pooling}"
grad_factor = 1.0
upstream = "*"
"""

_QA = (
    """
[components.clinlong_qa]
factory = "clinlong_qa"
# longest answer, in wordpieces
max_answer_length = 64
# the best span must beat the no-answer (CLS) score by this much
null_threshold = 0.0
scorer = {{"@scorers":"spacy-clinlong.qa_scorer.v1"}}

[components.clinlong_qa.model]
@architectures = "spacy-clinlong.LongQAModel.v1"
name = "{hub_id}"
# {budget_note}
max_length = {max_length}
max_query_length = 64
# padded wordpieces whose activations training holds for one backward pass;
# null: batch_wordpieces, 0: no limit (memory then grows with questions x windows)
backprop_wordpieces = null
"""
    + _ENCODER_SETTINGS
    + """
[components.clinlong_qa.model.get_spans]
@span_getters = "spacy-clinlong.long_spans.v1"
# at least max_answer_length, so every answer lies whole inside some window
overlap = 128
min_fill = 0.5
"""
)

_SCORES = {
    "ner": "ents_f = 1.0\nents_p = 0.0\nents_r = 0.0\nents_per_type = null",
    "textcat_multilabel": (
        "cats_macro_auc = 1.0\ncats_macro_f = 0.0\ncats_score = 0.0\n"
        "cats_f_per_type = null\ncats_auc_per_type = null"
    ),
    "qa": "qa_f1 = 1.0\nqa_exact = 0.0",
    "ner_textcat": (
        "ents_f = 0.5\nents_p = 0.0\nents_r = 0.0\nents_per_type = null\n"
        "cats_macro_auc = 0.5\ncats_macro_f = 0.0\ncats_score = 0.0\n"
        "cats_f_per_type = null\ncats_auc_per_type = null"
    ),
}
# Fine-tuning learning rates of the papers' scripts: 5e-5 for NER and
# classification, 3e-5 for SQuAD-style QA.
_LEARN_RATE = {"ner": "0.00005", "textcat_multilabel": "0.00005", "qa": "0.00003", "ner_textcat": "0.00005"}
# Notes per nlp.pipe batch: a QA doc becomes one encoder row per question.
_BATCH_SIZE = {"ner": 16, "textcat_multilabel": 16, "qa": 8, "ner_textcat": 16}


_TASK_ABOUT = {"ner_textcat": "ner and textcat_multilabel over one shared transformer"}

_RUN_NOTE = (
    "# The run's length is one setting: --training.max_steps 1000 (warm-up and decay follow).\n"
    "# Random-weight stand-ins learn at a higher rate:\n"
    "#   --training.optimizer.learn_rate.initial_rate 0.002\n"
)

_DROP = """
[components.clinlong_drop_trf_data]
factory = "clinlong_drop_trf_data"
# docs between handing free heap memory back to the operating system; 0: never
release_every = 256
"""


def render(task: str, model: str) -> str:
    """The complete config text for one task and model.

    task (str): "ner", "textcat_multilabel" or "qa".
    model (str): A key of MODELS.
    RETURNS (str): The config.
    """
    if task not in TASKS or model not in MODELS:
        raise ValueError(f"Unknown task/model {task!r}/{model!r}: tasks {TASKS}, models {tuple(MODELS)}")
    spec = MODELS[model]
    if task == "qa":
        return _qa_header(model, spec) + _frame(
            ["clinlong_qa"], _QA.format(hub_id=spec.hub_id, **_qa_budget(spec)), task
        )
    trf = (_STRIDED_TRANSFORMER if spec.strided else _LONG_TRANSFORMER).format(hub_id=spec.hub_id)
    textcat = _TEXTCAT.format(pooling=spec.doc_pooling)
    head = {"ner": _NER, "textcat_multilabel": textcat, "ner_textcat": _NER + textcat}[task]
    heads = ["ner", "textcat_multilabel"] if task == "ner_textcat" else [task]
    # The hidden states of every wordpiece are freed once the heads have read them.
    pipeline = ["transformer", *heads, "clinlong_drop_trf_data"]
    header = (
        f"# {_TASK_ABOUT.get(task, task)} on whole clinical notes: {spec.about}.\n"
        f"# Generated by spacy_clinlong/configs.py; edit there and run\n"
        f"#   python -m spacy_clinlong configs configs\n"
        f"# Online, with the real checkpoint:\n"
        f"#   spacy train configs/{task}_{model}.cfg --paths.train train.spacy --paths.dev dev.spacy\n"
        f"# Offline, with a directory this package built (make-model):\n"
        f"#   ... --components.transformer.model.name models/{spec.arch}-tiny\n" + _RUN_NOTE
    )
    return header + _frame(pipeline, trf + head + _DROP, task)


def _qa_budget(spec: ModelSpec) -> Dict[str, str]:
    if spec.strided:
        # spacy-transformers' strided_spans cannot read question-note pairs; the
        # short-model QA baseline is BERT's own recipe (Hugging Face run_qa:
        # 384-wordpiece pairs, windows overlapping by 128).
        return {
            "max_length": "384",
            "budget_note": "384 with a 128 overlap: Hugging Face run_qa's sliding windows",
        }
    return {
        "max_length": "null",
        "budget_note": "null: the model's own budget, question and specials included",
    }


def _qa_header(model: str, spec: ModelSpec) -> str:
    about = spec.about.replace("through strided 128/96 windows", "through 384-wordpiece sliding windows")
    return (
        f"# Extractive QA (SQuAD 2.0 style) on whole clinical notes: {about}.\n"
        f"# Generated by spacy_clinlong/configs.py; edit there and run\n"
        f"#   python -m spacy_clinlong configs configs\n"
        f'# The corpus: .spacy files whose docs carry QA gold in doc.user_data["clinlong_qa"]\n'
        f"# (python -m spacy_clinlong synth writes them; so do the SQuAD/emrQA converters).\n"
        f"# Online, with the real checkpoint (its QA head is newly initialized unless it has one):\n"
        f"#   spacy train configs/qa_{model}.cfg --paths.train train.spacy --paths.dev dev.spacy\n"
        f"# Offline, with a directory this package built (make-model):\n"
        f"#   ... --components.clinlong_qa.model.name models/{spec.arch}-tiny\n" + _RUN_NOTE
    )


# Heads on a frozen transformer: spaCy does not initialize frozen components (it
# expects them sourced), so this callback initializes the transformer from its
# checkpoint; with no names it does nothing.
_FROZEN = """
# Train the heads on a frozen transformer (its pretrained features, one forward
# pass per note, no backward pass: fast on CPU) with three overrides:
#   --training.frozen_components '["transformer"]'
#   --training.annotating_components '["transformer"]'
#   --initialize.before_init.names '["transformer"]'
[initialize.before_init]
@callbacks = "spacy-clinlong.initialize_frozen_transformers.v1"
names = []
"""


def _frame(pipeline: List[str], components: str, task: str) -> str:
    names = ",".join(f'"{p}"' for p in pipeline)
    scores, batch_size, learn_rate = _SCORES[task], _BATCH_SIZE[task], _LEARN_RATE[task]
    before_init, frozen = ("", _FROZEN) if "transformer" in pipeline else ("before_init = null\n", "")
    return f"""
[paths]
train = null
dev = null
vectors = null
init_tok2vec = null

[system]
gpu_allocator = "pytorch"
seed = 0

[nlp]
lang = "en"
pipeline = [{names}]
batch_size = {batch_size}
disabled = []
before_creation = null
after_creation = null
after_pipeline_creation = null
tokenizer = {{"@tokenizers":"spacy.Tokenizer.v1"}}
vectors = {{"@vectors":"spacy.Vectors.v1"}}

[components]
{components}
[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${{paths.train}}
max_length = 0
gold_preproc = false
limit = 0
augmenter = null

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${{paths.dev}}
max_length = 0
gold_preproc = false
limit = 0
augmenter = null

[training]
accumulate_gradient = 1
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"
seed = ${{system.seed}}
gpu_allocator = ${{system.gpu_allocator}}
dropout = 0.1
patience = 1600
max_epochs = 0
# the length of a run: the learning-rate schedule below follows it
max_steps = 20000
eval_frequency = 200
frozen_components = []
annotating_components = []
before_to_disk = null
before_update = null

[training.batcher]
@batchers = "spacy.batch_by_words.v1"
discard_oversize = false
tolerance = 0.2
get_length = null

[training.batcher.size]
@schedules = "compounding.v1"
start = 2000
stop = 8000
compound = 1.001
t = 0.0

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.optimizer]
@optimizers = "Adam.v1"
beta1 = 0.9
beta2 = 0.999
L2_is_weight_decay = true
L2 = 0.01
grad_clip = 1.0
use_averages = false
eps = 0.00000001

# Warm-up over the first 10% of training.max_steps, then a linear decay to 0 at
# max_steps: --training.max_steps alone sets the length of a run. The rate suits
# pretrained checkpoints; random-weight stand-ins (make-model) need about 0.002.
[training.optimizer.learn_rate]
@schedules = "spacy-clinlong.warmup_linear.v1"
initial_rate = {learn_rate}
total_steps = ${{training.max_steps}}
warmup_fraction = 0.1

[training.score_weights]
{scores}

[pretraining]

[initialize]
vectors = ${{paths.vectors}}
init_tok2vec = ${{paths.init_tok2vec}}
vocab_data = null
lookups = null
{before_init}after_init = null
{frozen}
[initialize.components]

[initialize.tokenizer]
"""


# The simplest thing that could work, as spaCy itself writes it (`spacy init config -p
# PIPE`, CPU, efficiency): each head is measured against these on the same data.
BASELINES: Dict[str, str] = {"baseline_textcat_bow": "textcat_multilabel", "baseline_ner_cpu": "ner"}
_BASELINE_ABOUT = {
    "baseline_textcat_bow": "spaCy's bag-of-words textcat_multilabel (spacy.TextCatBOW.v3, unigrams)",
    "baseline_ner_cpu": "spaCy's CPU ner (tok2vec of hashed embeddings and CNN, no transformer)",
}


def render_baseline(name: str) -> str:
    """The config spaCy's `init config` writes for a baseline, with a header.

    name (str): A key of BASELINES.
    RETURNS (str): The config.
    """
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}: {tuple(BASELINES)}")
    config = _spacy_cpu_config(BASELINES[name])
    header = (
        f"# Baseline: {_BASELINE_ABOUT[name]}.\n"
        f"# spaCy's own config: python -m spacy init config -p {BASELINES[name]} (CPU, efficiency);\n"
        f"# written by spacy_clinlong/configs.py, unchanged.\n"
    )
    return header + config.to_str()


def _spacy_cpu_config(pipe: str):
    """`spacy init config -p PIPE` (English, CPU, efficiency), without importing
    spacy-transformers or the packages of other installed components.

    spaCy asks `has_spacy_transformers()` (an import) only to drop the
    transformer a GPU config would use, and fills the config in a `Language`
    that imports every component package (see `corpus.blank`); a CPU config
    of spaCy's own components needs neither, and comes out the same.

    pipe (str): The component, e.g. "ner".
    RETURNS (Config): The filled config.
    """
    import importlib

    from .corpus.blank import factory_entry_points_skipped

    # `spacy.cli.init_config` is also the name of the function spacy.cli exports.
    module = importlib.import_module("spacy.cli.init_config")
    asked = getattr(module, "has_spacy_transformers", None)
    with factory_entry_points_skipped():
        if asked is not None:
            module.has_spacy_transformers = lambda: False
        try:
            return module.init_config(lang="en", pipeline=[pipe], optimize="efficiency", gpu=False)
        finally:
            if asked is not None:
                module.has_spacy_transformers = asked


def write_configs(output_dir: Path, tasks=TASKS) -> List[Path]:
    """Write every task x model config into output_dir.

    output_dir (Path): The directory (created if missing).
    tasks (Iterable[str]): The tasks to write.
    RETURNS (List[Path]): The files written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task in tasks:
        for model in MODELS:
            path = output_dir / f"{task}_{model}.cfg"
            path.write_text(render(task, model))
            written.append(path)
    for name in BASELINES:
        path = output_dir / f"{name}.cfg"
        path.write_text(render_baseline(name))
        written.append(path)
    return written
