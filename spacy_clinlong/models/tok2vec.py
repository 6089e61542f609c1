"""The long-span transformer used directly as a component's tok2vec.

This is what `nlp.replace_listeners("transformer", "ner", ["model.tok2vec"])`
turns a listener into: the component gets its own copy of the encoder, and
the saved config names `spacy-clinlong.Tok2VecLongTransformer.v1` so the
pipeline loads again.
"""

from typing import Any, Dict, List, Optional

from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from spacy_transformers.layers import split_trf_batch, trfs2arrays
from thinc.api import Model, chain
from thinc.types import Floats2d, Ragged

from .architecture import TOK2VEC_ARCH, LongTransformerModel
from .encoder import EncoderSettings
from .types import GlobalAttentionT, LongSpansT


@registry.architectures(TOK2VEC_ARCH)
def create_tok2vec_long_transformer_v1(
    name: str,
    pooling: Model[Ragged, Floats2d],
    grad_factor: float = 1.0,
    get_spans: Optional[LongSpansT] = None,
    global_attention: Optional[GlobalAttentionT] = None,
    max_length: Optional[int] = None,
    batch_wordpieces: int = 16384,
    tokenizer_config: Dict[str, Any] = SimpleFrozenDict(),
    transformer_config: Dict[str, Any] = SimpleFrozenDict(),
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = SimpleFrozenDict(),
    gradient_checkpointing: bool = False,
    attention: str = "fast",
    torch_compile: bool = False,
    quantize: Optional[str] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """A component's own long-span transformer, giving one vector per token.

    name (str): Hub id or local directory of the encoder.
    pooling (Model[Ragged, Floats2d]): How a token's wordpiece vectors are
        reduced to one (usually reduce_mean.v1).
    grad_factor (float): Scales the gradient passed to the encoder.
    The remaining arguments are those of `spacy-clinlong.LongTransformerModel.v1`.
    RETURNS (Model[List[Doc], List[Floats2d]]): The tok2vec.
    """
    transformer = LongTransformerModel(
        EncoderSettings(
            name,
            get_spans=get_spans,
            global_attention=global_attention,
            max_length=max_length,
            batch_wordpieces=batch_wordpieces,
            tokenizer_config=tokenizer_config,
            transformer_config=transformer_config,
            mixed_precision=mixed_precision,
            grad_scaler_config=grad_scaler_config,
            gradient_checkpointing=gradient_checkpointing,
            attention=attention,
            torch_compile=torch_compile,
            quantize=quantize,
        )
    )
    # A chain of a chain, the structure replace_listener gives (see
    # spacy-transformers' Tok2VecTransformer.v3), so saved weights line up.
    return chain(chain(transformer, split_trf_batch()), trfs2arrays(pooling, grad_factor))
