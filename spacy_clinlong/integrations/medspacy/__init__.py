"""Clinical rules after the model (medspaCy's sections and ConText), and the JSON view of a doc."""

from .doc_json import doc_to_json
from .pipes import add_medspacy, quiet_pyrush
from .sentences import ClinicalSentences
from .speed import measure_medspacy_speed

__all__ = ["ClinicalSentences", "add_medspacy", "doc_to_json", "measure_medspacy_speed", "quiet_pyrush"]
