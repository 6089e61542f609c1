"""`clinlong_drop_trf_data`: free the transformer's output once the heads have run.

spacy-transformers keeps `doc._.trf_data` (every wordpiece's hidden state,
about 9 MB for a note of 3,000 wordpieces at width 768) on every doc for as
long as the doc lives; users who keep docs (`list(nlp.pipe(notes))`, DocBin
shards, a queue of results) run out of memory (spaCy issues #7593, #9086).
The heads (`ner`, `textcat`, `spancat` listeners) read it while the pipeline
runs; nothing after them does. Our configs put this component right after the
last head; a pipeline that wants the hidden states afterwards leaves it out
(`spacy.load(name, exclude=["clinlong_drop_trf_data"])`).

Every `release_every` docs it also hands the C heap's free pages back to the
operating system (`spacy_clinlong.pipes.memory.release_memory`): without that, the
resident set of a long annotation run creeps up with heap fragmentation.
"""

from typing import Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Doc

from .memory import release_memory

ATTR = "trf_data"


class DropTrfData:
    """Resets `doc._.trf_data` to its default (None) on every doc it sees.

    name (str): The component's name.
    release_every (int): Return free heap memory to the operating system
        after this many docs; 0 never.
    """

    def __init__(self, name: str = "clinlong_drop_trf_data", *, release_every: int = 256):
        if release_every < 0:
            raise ValueError(f"release_every must be >= 0, got {release_every}")
        self.name = name
        self.release_every = release_every
        self._seen = 0

    def __call__(self, doc: Doc) -> Doc:
        if Doc.has_extension(ATTR):
            doc._.set(ATTR, None)
        self._seen += 1
        if self.release_every and self._seen % self.release_every == 0:
            release_memory()
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 128) -> Iterator[Doc]:
        for doc in docs:
            yield self(doc)


@Language.factory(
    "clinlong_drop_trf_data",
    assigns=["doc._.trf_data"],
    default_config={"release_every": 256},
)
def make_drop_trf_data(nlp: Language, name: str, release_every: int) -> DropTrfData:
    """Create the component that frees doc._.trf_data after the heads, and
    returns free heap memory to the operating system every `release_every` docs."""
    return DropTrfData(name, release_every=release_every)
