"""Offline stand-ins for the hub checkpoints: tokenizers trained on synthetic notes (and, for
base, a shipped clinical word list) and random-weight models of the real shapes (`make-model`)."""

from .make_model import ARCHS, SIZES, build_model, read_build_info

__all__ = ["ARCHS", "SIZES", "build_model", "read_build_info"]
