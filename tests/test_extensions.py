"""The Doc/Span attributes of spacy-clinlong are its own or refused."""

import pytest
from spacy.tokens import Doc, Span

from spacy_clinlong.pipes.extensions import install_extensions


@pytest.fixture
def restore_extensions():
    install_extensions()
    saved = {
        (cls, name): cls.get_extension(name)
        for cls, name in [(Doc, "questions"), (Doc, "answers"), (Span, "score"), (Doc, "note_id")]
    }
    yield
    for (cls, name), (default, _method, getter, setter) in saved.items():
        kwargs = {"getter": getter, "setter": setter} if getter else {"default": default}
        cls.set_extension(name, force=True, **kwargs)


def test_install_is_idempotent_and_shares_compatible_declarations(restore_extensions):
    install_extensions()
    # Another package's plain slot of the same name (default None) behaves as ours.
    Doc.set_extension("note_id", default=None, force=True)
    install_extensions()
    assert Doc.get_extension("note_id")[0] is None


@pytest.mark.parametrize(
    "cls,name,kwargs",
    [
        (Doc, "answers", {"default": None}),
        (Doc, "questions", {"default": []}),
        (Span, "score", {"getter": lambda span: 1.0}),
    ],
)
def test_foreign_attribute_of_the_same_name_is_refused(restore_extensions, cls, name, kwargs):
    cls.set_extension(name, force=True, **kwargs)
    with pytest.raises(ValueError, match=rf"{cls.__name__}\._\.{name} is already declared"):
        install_extensions()


def test_a_foreign_attribute_stops_clinlong_qa_only(restore_extensions, tiny_models):
    import spacy

    Span.set_extension("score", default=0.0, force=True)  # another package's Span._.score
    nlp = spacy.blank("en")
    nlp.add_pipe("clinlong_drop_trf_data")  # needs none of our attributes: loads
    with pytest.raises(ValueError, match=r"Span\._\.score is already declared"):
        nlp.add_pipe(
            "clinlong_qa",
            config={
                "model": {
                    "@architectures": "spacy-clinlong.LongQAModel.v1",
                    "name": str(tiny_models("longformer")),
                }
            },
        )
