"""Type aliases at the model boundaries: the transformer, span getters and global attention."""

from typing import TYPE_CHECKING, Callable, List, Tuple

from spacy.tokens import Doc, Span
from spacy_transformers.data_classes import FullTransformerBatch
from thinc.api import Model

if TYPE_CHECKING:
    from .global_attention import GlobalSelection
    from .pieces import DocPieces

LongBatchT = Model[List[Doc], FullTransformerBatch]
# A [start, end) wordpiece range of a doc.
Window = Tuple[int, int]
# DocPieces and GlobalSelection by name: their modules import this one.
LongSpansT = Callable[[Doc, "DocPieces", int], List[Window]]
GlobalAttentionT = Callable[[Span], "GlobalSelection"]

__all__ = ["GlobalAttentionT", "LongBatchT", "LongSpansT", "Window"]
