"""spacy-clinlong: long-context clinical transformers as spaCy components."""
from .about import __version__
from .models import LongTransformerModel, ModelLoadError

__all__ = ["__version__", "LongTransformerModel", "ModelLoadError"]
