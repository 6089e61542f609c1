"""Type aliases at the package's model boundaries."""
from typing import List

from spacy.tokens import Doc
from spacy_transformers.data_classes import FullTransformerBatch
from thinc.api import Model

LongBatchT = Model[List[Doc], FullTransformerBatch]

__all__ = ["LongBatchT"]
