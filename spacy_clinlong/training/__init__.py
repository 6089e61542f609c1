"""Training helpers registered for `spacy train` configs."""
from .schedules import warmup_linear_v1

__all__ = ["warmup_linear_v1"]
