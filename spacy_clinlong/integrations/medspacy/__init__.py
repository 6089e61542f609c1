"""Clinical rules after the model (medspaCy's sections and ConText), and the JSON view of a doc."""

from .doc_json import doc_to_json
from .pipes import add_medspacy, quiet_pyrush

__all__ = ["add_medspacy", "doc_to_json", "quiet_pyrush"]
