"""A text classifier that is never worse than a bag of words: spaCy's ensemble over whole notes.

spaCy's `TextCatEnsemble.v2` joins a bag-of-words linear model with a
tok2vec-based model. Here the second member reads the whole note through
`spacy-clinlong.DocPoolingListener.v1` (the globally attending first token, or
the mean of every wordpiece), and the two members' scores are added before the
sigmoid (softmax for exclusive classes): the bag of words learns at its own
pace, as it would alone, rather than through an output layer that starts random
(spaCy's concatenation), and a transformer that has not learned the labels yet
costs little, while one that has adds what words alone miss (a drug's name is a
medication or an allergy only by the section it is listed under).
"""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Logistic, Model, Relu, add, chain, softmax_activation
from thinc.types import Floats2d


@registry.architectures("spacy-clinlong.WholeNoteTextCatEnsemble.v1")
def create_whole_note_textcat_ensemble_v1(
    doc_encoder: Model[List[Doc], Floats2d],
    linear_model: Model[List[Doc], Floats2d],
    hidden_width: int = 0,
    dropout: float = 0.1,
    linear_scale: float = 1.0,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Bag-of-words and whole-note scores, added.

    doc_encoder (Model[List[Doc], Floats2d]): One vector per doc, e.g.
        `spacy-clinlong.DocPoolingListener.v1`.
    linear_model (Model[List[Doc], Floats2d]): The bag-of-words member, e.g.
        `spacy.TextCatBOW.v3` with `no_output_layer = true` (its scores are
        added to the note vector's); it decides whether the labels exclude
        each other (`exclusive_classes`).
    hidden_width (int): Width of a ReLU layer over the note vector; 0 for none.
    dropout (float): Dropout on the note vector.
    linear_scale (float): Multiplies the bag-of-words scores. Adam moves each
        weight by about the learning rate per step, so this multiplies the bag
        of words' learning rate: a transformer is fine-tuned at 5e-5, spaCy
        trains a bag of words at 1e-3, hence 20 in the configs.
    nO (Optional[int]): Number of labels; set by the component from its labels.
    RETURNS (Model[List[Doc], Floats2d]): The classifier.
    """
    if "multi_label" not in linear_model.attrs:
        raise ValueError("linear_model must be a text classifier such as spacy.TextCatBOW.v3")
    if any(kind in linear_model.layers[-1].name for kind in ("logistic", "softmax")):
        raise ValueError("linear_model must give scores, not probabilities: set no_output_layer = true")
    if linear_scale <= 0:
        raise ValueError(f"linear_scale must be positive, got {linear_scale}")
    if hidden_width < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"hidden_width must be >= 0 and dropout in [0, 1), got {hidden_width}, {dropout}")
    exclusive = not linear_model.attrs["multi_label"]
    note_layers: List[Model] = [doc_encoder]
    note_layers.append(Relu(nO=hidden_width, dropout=dropout) if hidden_width else Dropout(dropout))
    note_layers.append(Linear(nO=nO))
    note_model = chain(*note_layers)
    activation = softmax_activation() if exclusive else Logistic()
    words = linear_model if linear_scale == 1.0 else chain(linear_model, _scale(linear_scale))
    model = chain(add(words, note_model), activation)
    if nO is not None:
        model.set_dim("nO", nO)
    model.set_ref("linear_model", linear_model)
    model.set_ref("doc_encoder", doc_encoder)
    # textcat's resize and spaCy's model inspection look for these.
    model.set_ref("output_layer", linear_model.get_ref("output_layer"))
    model.attrs["multi_label"] = not exclusive
    return model


def _scale(factor: float) -> Model[Floats2d, Floats2d]:
    def forward(model: Model, X: Floats2d, is_train: bool):
        return X * factor, lambda dY: dY * factor

    return Model("clinlong-scale", forward, attrs={"factor": factor})
