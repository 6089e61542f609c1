"""The demo's second half: a small trained pipeline that finds entities and answers questions.

`spacy train` with the package's own configs (the same a user trains with),
on the demo's synthetic notes and tiny model; then the QA component joins the
ner pipeline, medspaCy's sections and ConText go after it, and the pipeline is
saved where `annotate`, `spacy.load` and `ask` can use it.
"""

from pathlib import Path
from typing import Dict

import typer

# make-model architecture -> the config family that trains it
CONFIG_MODEL = {
    "longformer": "longformer",
    "bigbird": "bigbird",
    "modernbert": "modernbert",
    "bert": "clinicalbert_strided",
}
# Random tiny weights learn at a higher rate than the configs' (pretrained) one.
STANDIN_LEARN_RATE = 0.002


def train_demo_pipeline(output_dir: Path, model_dir: Path, *, train_steps: int, seed: int) -> Path:
    """Train ner and clinlong_qa on the demo corpus and save one pipeline with both and medspaCy.

    output_dir (Path): The demo folder (corpus/ must be there).
    model_dir (Path): The tiny model to train from.
    train_steps (int): Steps for each head.
    seed (int): Training seed.
    RETURNS (Path): The trained pipeline's directory (OUTPUT_DIR/trained).
    """
    import json

    import spacy
    from spacy.cli.train import train

    from ..configs import render
    from ..integrations.medspacy import add_medspacy

    arch = json.loads((Path(model_dir) / "config.json").read_text())["model_type"]
    config_model = CONFIG_MODEL.get({"big_bird": "bigbird"}.get(arch, arch), "longformer")
    corpus = Path(output_dir) / "corpus"
    common: Dict[str, object] = {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "training.max_steps": train_steps,
        "training.eval_frequency": max(train_steps // 2, 1),
        "training.optimizer.learn_rate.initial_rate": STANDIN_LEARN_RATE,
        "system.seed": seed,
        "training.batcher.size.start": 2000,
        "training.batcher.size.stop": 2000,
        "training.logger.progress_bar": False,
    }
    configs = Path(output_dir) / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    trained = {}
    for task, name_key in (
        ("ner", "components.transformer.model.name"),
        ("qa", "components.clinlong_qa.model.name"),
    ):
        path = configs / f"{task}_{config_model}.cfg"
        path.write_text(render(task, config_model), encoding="utf8")
        out = Path(output_dir) / "training" / task
        train(path, out, overrides={**common, name_key: str(model_dir)})
        trained[task] = out / "model-best"
    nlp = spacy.load(trained["ner"])
    nlp.add_pipe("clinlong_qa", source=spacy.load(trained["qa"]), before="clinlong_drop_trf_data")
    add_medspacy(nlp)
    path = Path(output_dir) / "trained"
    nlp.to_disk(path)
    return path


def show_trained(pipeline_dir: Path, test_path: Path, n_notes: int = 2, n_questions: int = 4) -> None:
    """Print what a trained pipeline finds in held-out synthetic notes, beside the gold.

    pipeline_dir (Path): The trained pipeline.
    test_path (Path): Gold held-out notes (.spacy with QA gold).
    n_notes (int): Notes to show.
    n_questions (int): Questions to show per note.
    """
    from collections import Counter

    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example

    from ..pipes.qa_scoring import GOLD_KEY

    nlp = spacy.load(pipeline_dir)
    gold = list(DocBin(store_user_data=True).from_disk(test_path).get_docs(nlp.vocab))
    scores = nlp.evaluate([Example(nlp.make_doc(doc.text), doc) for doc in gold])
    typer.echo(
        f"Held-out notes: {len(gold)}; entity F1 {scores['ents_f']:.3f}, "
        f"SQuAD 2.0 exact match {scores.get('qa_exact', 0):.3f}, F1 {scores.get('qa_f1', 0):.3f}"
    )
    for ref in gold[:n_notes]:
        doc = nlp.make_doc(ref.text)
        qas = list(ref.user_data.get(GOLD_KEY) or [])[:n_questions]
        doc._.questions = [qa.get("question") or "" for qa in qas]
        doc = nlp(doc)
        found = Counter(e.label_ for e in doc.ents)
        expected = Counter(e.label_ for e in ref.ents)
        typer.echo(
            f"\nNote {ref.user_data.get('note_id', '?')}: entities found / gold: "
            + ", ".join(f"{label} {found[label]}/{expected[label]}" for label in sorted(expected))
        )
        negated = [e.text for e in doc.ents if e._.is_negated][:5]
        typer.echo(f"  negated (medspaCy ConText): {', '.join(negated) if negated else 'none'}")
        for qa, answer in zip(qas, doc._.answers or []):
            golds = [a["text"] for a in qa.get("answers") or []] or ["(no answer)"]
            said = answer._.clinlong_answer_text if answer is not None else "(no answer)"
            typer.echo(f"  Q: {qa.get('question')}\n     answer: {said!r}   gold: {golds[0]!r}")
