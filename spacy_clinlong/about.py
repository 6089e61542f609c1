__title__ = "spacy-clinlong"
__version__ = "0.1.0"
