"""spacy-clinlong: long-context clinical transformers as spaCy components."""

from .about import __version__

__all__ = ["__version__", "LongTransformerModel", "ModelLoadError"]


def __getattr__(name):
    # Re-exported lazily: spaCy imports our `spacy_cli` entry point on every
    # `spacy ...` command, which must not pay for importing torch.
    if name in ("LongTransformerModel", "ModelLoadError"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'spacy_clinlong' has no attribute {name!r}")
