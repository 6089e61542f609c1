"""The thinc architecture around Hugging Face encoders, its span getters and
global attention choosers."""

from .architecture import LongTransformerModel, create_long_transformer_model_v1
from .doc_pooling import create_doc_pooling_listener_v1, create_whole_note_textcat_v1
from .encoder import EncoderSettings
from .global_attention import (
    GlobalSelection,
    configure_global_attention_cls,
    configure_global_attention_none,
    configure_global_attention_section_headers,
)
from .hf_loading import ModelLoadError
from .long_spans import configure_long_spans, get_long_spans
from .qa_model import LongQAModel, QAQuery, create_long_qa_model_v1
from .tok2vec import create_tok2vec_long_transformer_v1

__all__ = [
    "EncoderSettings",
    "LongQAModel",
    "QAQuery",
    "create_long_qa_model_v1",
    "LongTransformerModel",
    "create_long_transformer_model_v1",
    "GlobalSelection",
    "configure_global_attention_cls",
    "configure_global_attention_none",
    "configure_global_attention_section_headers",
    "ModelLoadError",
    "configure_long_spans",
    "get_long_spans",
    "create_tok2vec_long_transformer_v1",
    "create_doc_pooling_listener_v1",
    "create_whole_note_textcat_v1",
]
