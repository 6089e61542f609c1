"""Training helpers registered for `spacy train` configs."""

from .frozen import initialize_frozen_transformers_v1
from .schedules import warmup_linear_v1

__all__ = ["initialize_frozen_transformers_v1", "warmup_linear_v1"]
