"""Train heads on a frozen transformer that is not sourced from a pipeline.

spaCy skips the initialization of `[training] frozen_components`, expecting
them sourced from a trained pipeline. A transformer built from a checkpoint
(a hub id or a local directory) needs no data to initialize, so it can be
frozen straight from the config: name it in `frozen_components` and
`annotating_components` (its listeners then read `doc._.trf_data`), and
initialize it before the rest of the pipeline:

    [initialize.before_init]
    @callbacks = "spacy-clinlong.initialize_frozen_transformers.v1"
    names = ["transformer"]

On CPU this trains the heads at the cost of one forward pass per note (no
transformer backward pass), reading the checkpoint's own pretrained features.
"""

from typing import Callable, Sequence

from spacy.language import Language
from spacy.util import registry


@registry.callbacks("spacy-clinlong.initialize_frozen_transformers.v1")
def initialize_frozen_transformers_v1(names: Sequence[str] = ()) -> Callable[[Language], Language]:
    """Initialize transformer components before the pipeline's initialization.

    names (Sequence[str]): Transformer components to initialize (those that
        `[training] frozen_components` keeps out of spaCy's initialization).
    RETURNS (Callable[[Language], Language]): The `before_init` callback.
    """
    names = list(names)

    def initialize_frozen(nlp: Language) -> Language:
        # Imported here: looking up the package's schedules needs no torch.
        from spacy_transformers import Transformer

        for name in names:
            if name not in nlp.component_names:
                raise ValueError(
                    f"initialize_frozen_transformers: no component named {name!r} "
                    f"(components: {', '.join(nlp.component_names)})"
                )
            component = nlp.get_pipe(name)
            if not isinstance(component, Transformer):
                raise ValueError(
                    f"initialize_frozen_transformers: {name!r} is a {type(component).__name__}, "
                    "not a transformer (other components need training data to initialize)"
                )
            # A transformer initializes from its checkpoint alone (no examples).
            component.initialize(lambda: [], nlp=nlp)
            # Its own initialize links listeners through nlp.pipeline, which
            # leaves out the frozen (disabled while initializing) transformer:
            # link them here so that they learn its width.
            later = [proc for _, proc in nlp.components[nlp.component_names.index(name) + 1 :]]
            for proc in later:
                component.find_listeners(proc)
        return nlp

    return initialize_frozen
