"""Whole-note vectors for doc-level heads (textcat, textcat_multilabel).

spaCy's text classifiers pool token vectors; a long-context model has better:
Longformer's first token (CLS) attends to, and is attended by, every token of
the note, so its vector summarises the whole note. `cls` pools that vector
(averaged over windows when a note needed several); `mean` averages every
wordpiece of the note once, each from the window its token reads from.
"""

from typing import List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.data_classes import TransformerData
from spacy_transformers.layers import TransformerListener
from thinc.api import Dropout, Linear, Logistic, Model, Relu, Softmax, chain
from thinc.types import Floats2d
from transformers.utils import ModelOutput

POOLINGS = ("cls", "mean")


def doc_pooling(strategy: str, grad_factor: float) -> Model[List[TransformerData], Floats2d]:
    """Pool each doc's transformer output into one row.

    strategy (str): "cls" or "mean".
    grad_factor (float): Scales the gradient passed back to the transformer.
    RETURNS (Model[List[TransformerData], Floats2d]): The pooling layer.
    """
    if strategy not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {strategy!r}")
    return Model(
        "clinlong-doc-pooling",
        _pooling_forward,
        attrs={"strategy": strategy, "grad_factor": float(grad_factor)},
        dims={"nO": None},
    )


def _pool_rows(data: TransformerData, strategy: str) -> Tuple[Optional[numpy.ndarray], int]:
    """The flattened rows a doc's vector averages, and the tensor's row count."""
    if "last_hidden_state" not in data.model_output:
        return None, 0
    hidden = data.model_output.last_hidden_state
    n_windows, length = hidden.shape[0], hidden.shape[1]
    if hidden.size == 0:
        return None, 0
    if strategy == "cls":
        rows = numpy.arange(n_windows, dtype="int64") * length
    else:
        rows = numpy.unique(numpy.asarray(data.align.dataXd, dtype="int64"))
        if rows.size == 0:
            rows = numpy.zeros((1,), dtype="int64")
    return rows, n_windows * length


def _pooling_forward(model: Model, trf_datas: List[TransformerData], is_train: bool):
    strategy = model.attrs["strategy"]
    grad_factor = model.attrs["grad_factor"]
    ops = model.ops
    width = None
    plans = []
    for data in trf_datas:
        rows, total = _pool_rows(data, strategy)
        plans.append((rows, total))
        if rows is not None and width is None:
            width = data.width
    if width is None:
        width = model.get_dim("nO") if model.has_dim("nO") else 0
    output = ops.alloc2f(len(trf_datas), width)
    for i, (data, (rows, total)) in enumerate(zip(trf_datas, plans)):
        if rows is None:
            continue
        flat = ops.reshape2f(data.model_output.last_hidden_state, total, width)
        output[i] = flat[ops.asarray1i(rows)].mean(axis=0)

    def backprop(d_output: Floats2d) -> List[TransformerData]:
        grads: List[TransformerData] = []
        for i, (data, (rows, total)) in enumerate(zip(trf_datas, plans)):
            if rows is None:
                continue  # listeners skip docs without output (empty docs)
            hidden = data.model_output.last_hidden_state
            d_flat = ops.alloc2f(total, width)
            d_flat[ops.asarray1i(rows)] += d_output[i] * (grad_factor / rows.shape[0])
            grads.append(
                TransformerData(
                    wordpieces=data.wordpieces,
                    model_output=ModelOutput(last_hidden_state=d_flat.reshape(hidden.shape)),
                    align=data.align,
                )
            )
        return grads

    return output, backprop


@registry.architectures("spacy-clinlong.DocPoolingListener.v1")
def create_doc_pooling_listener_v1(
    pooling: str = "cls", grad_factor: float = 1.0, upstream: str = "*"
) -> Model[List[Doc], Floats2d]:
    """One vector per doc from an upstream transformer component.

    pooling (str): "cls" (the first token of each window: global in
        Longformer and BigBird) or "mean" (every wordpiece of the note once).
    grad_factor (float): Scales gradients passed to the transformer.
    upstream (str): The transformer component's name, or "*".
    RETURNS (Model[List[Doc], Floats2d]): The layer.
    """
    listener = TransformerListener(upstream_name=upstream)
    model = chain(listener, doc_pooling(pooling, grad_factor))
    model.set_ref("listener", listener)
    return model


@registry.architectures("spacy-clinlong.WholeNoteTextCat.v1")
def create_whole_note_textcat_v1(
    doc_encoder: Model[List[Doc], Floats2d],
    exclusive_classes: bool,
    hidden_width: int = 0,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """A text classifier over whole-note vectors.

    doc_encoder (Model[List[Doc], Floats2d]): One vector per doc, e.g.
        `spacy-clinlong.DocPoolingListener.v1`.
    exclusive_classes (bool): One label per doc (softmax) or any number (logistic).
    hidden_width (int): Width of a ReLU layer before the output; 0 for none.
    dropout (float): Dropout before the output layer.
    nO (Optional[int]): Number of labels; set by the component from its labels.
    RETURNS (Model[List[Doc], Floats2d]): The classifier.
    """
    layers: List[Model] = [doc_encoder]
    if hidden_width:
        layers.append(Relu(nO=hidden_width, dropout=dropout))
    else:
        layers.append(Dropout(dropout))
    if exclusive_classes:
        layers.append(Softmax(nO=nO))
    else:
        layers.append(chain(Linear(nO=nO), Logistic()))
    model = chain(*layers)
    model.attrs["multi_label"] = not exclusive_classes
    return model
