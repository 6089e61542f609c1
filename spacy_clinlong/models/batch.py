"""The batch object the long-span model hands to spacy-transformers."""

from dataclasses import dataclass
from typing import List

from spacy_transformers.data_classes import FullTransformerBatch, TransformerData
from transformers.utils import ModelOutput


@dataclass
class LongTransformerBatch(FullTransformerBatch):
    """A FullTransformerBatch whose per-doc data is computed up front.

    Each doc keeps its own windows, padded only to its own longest window,
    instead of one tensor padded to the longest span of the whole batch; the
    per-doc TransformerData (what listeners and doc._.trf_data see) is
    therefore the authoritative output, and `model_output` of the batch as a
    whole is empty.
    """

    def unsplit_by_doc(self, arrays: List[List]) -> "LongTransformerBatch":
        """Wrap per-doc gradients (what the Transformer component collects
        from its listeners) for the model's backprop callback.

        arrays (List[List[FloatsXd]]): Per doc, gradients of its tensors.
        RETURNS (LongTransformerBatch): Gradients, one TransformerData per doc.
        """
        grads = [
            TransformerData(
                wordpieces=data.wordpieces,
                model_output=ModelOutput(last_hidden_state=doc_arrays[0]),
                align=data.align,
            )
            for data, doc_arrays in zip(self._with_output(), arrays)
        ]
        return LongTransformerBatch(
            spans=self.spans,
            wordpieces=self.wordpieces,
            model_output=ModelOutput(),
            align=self.align,
            cached_doc_data=grads,
        )

    def _with_output(self) -> List[TransformerData]:
        # Listeners skip docs without output (empty docs) when they return
        # gradients, so gradients line up with the docs that have output.
        return [d for d in self.doc_data if "last_hidden_state" in d.model_output]
