"""`clinlong_doc_consumer`: medspaCy's DocConsumer (`doc._.data`), without its per-entity overhead.

medspaCy's DocConsumer reads each entity's eleven default attributes through `getattr`,
trying the Span first and catching the AttributeError for each custom one; each
`ent._.x` builds an Underscore object, and `section_category` and `section_parent`
go through two getters and the entity's first token. At 50,000 entities in a long
note that is seconds. The section bodies' texts are joined token by token.

`FastDocConsumer` writes the same `doc._.data` (same keys, order and values): the
characters of entities and sections from one read of the doc's offsets and text, the
ConText flags (plain defaults) straight from `doc.user_data` where spaCy keeps them,
and the section of an entity from its first token's `section`, as medspaCy's getters
do. Attributes it does not know, or whose extension is not medspaCy's, are read as
medspaCy reads them.
"""

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

from medspacy.io.doc_consumer import DocConsumer
from spacy.attrs import IDX, LENGTH
from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.tokens.underscore import Underscore

_SECTION_GETTERS = ("section_category", "section_parent")
MANY = 32


class _Chars:
    """A doc's text and its tokens' character offsets, read once."""

    def __init__(self, doc: Doc) -> None:
        self.text = doc.text
        attrs = doc.to_array([IDX, LENGTH]).astype("int64")
        self.starts = attrs[:, 0].tolist()
        self.ends = (attrs[:, 0] + attrs[:, 1]).tolist()

    def span(self, start: int, end: int) -> Tuple[int, int]:
        """RETURNS (Tuple[int, int]): start_char and end_char of the non-empty span doc[start:end]."""
        return self.starts[start], self.ends[end - 1]


class FastDocConsumer(DocConsumer):
    """medspaCy's DocConsumer (same arguments and `doc._.data`), reading attributes directly."""

    def __call__(self, doc: Doc) -> Doc:
        data: Dict[str, Any] = dict()
        for dtype, attrs in self.dtype_attrs.items():
            data.setdefault(dtype, OrderedDict())
            for attr in attrs:
                data[dtype][attr] = list()
        # Reading the whole text pays off only for many spans; few are read as medspaCy reads them.
        many = len(doc.ents) >= MANY or ("section" in self.dtypes and len(doc._.sections) >= MANY)
        chars = _Chars(doc) if many and len(doc) else None
        if "ents" in self.dtypes:
            self._add_spans(doc, chars, list(doc.ents), self.dtype_attrs["ents"], data["ents"])
        if "group" in self.dtypes:
            spans = list(doc.spans[self._span_group_name])
            self._add_spans(doc, chars, spans, self.dtype_attrs["group"], data["group"])
        if "context" in self.dtypes:
            for ent, modifier in doc._.context_graph.edges:
                self.add_context_edge_attributes(ent, modifier, data["context"], doc)
        if "section" in self.dtypes:
            for section in doc._.sections:
                self._add_section(doc, chars, section, data["section"])
        if "doc" in self.dtypes:
            for attr in self.dtype_attrs["doc"]:
                try:
                    val = getattr(doc, attr)
                except AttributeError:
                    val = getattr(doc._, attr)
                data["doc"][attr].append(val)
        doc._.data = data
        return doc

    def _add_spans(self, doc: Doc, chars: Optional[_Chars], spans: List[Span], attrs, out) -> None:
        if not spans:
            return
        if chars is None:
            for span in spans:
                for attr in attrs:
                    try:
                        val = getattr(span, attr)
                    except AttributeError:
                        val = getattr(span._, attr)
                    out[attr].append(val)
            return
        bounds = [(span.start, span.end) for span in spans]
        offsets = [
            chars.span(s, e) if e > s else (span.start_char, span.end_char)
            for (s, e), span in zip(bounds, spans)
        ]
        user_data = doc.user_data
        for attr in attrs:
            column = out[attr]
            reader = _span_reader(attr)
            if reader == "text":
                column.extend(
                    chars.text[a:b] if e > s else span.text
                    for (a, b), (s, e), span in zip(offsets, bounds, spans)
                )
            elif reader == "start_char":
                column.extend(a for a, _ in offsets)
            elif reader == "end_char":
                column.extend(b for _, b in offsets)
            elif reader == "label_":
                column.extend(span.label_ for span in spans)
            elif reader == "default":
                default = Span.get_extension(attr)[0]
                column.extend(user_data.get(("._.", attr, a, b), default) for a, b in offsets)
            elif reader == "section":
                field = attr[len("section_") :]
                for (s, e), span in zip(bounds, spans):
                    if e <= s:
                        column.append(getattr(span._, attr))
                        continue
                    section = user_data.get(("._.", "section", chars.starts[s], None))
                    column.append(None if section is None else getattr(section, field))
            else:
                for span in spans:
                    try:
                        val = getattr(span, attr)
                    except AttributeError:
                        val = getattr(span._, attr)
                    column.append(val)

    def _add_section(self, doc: Doc, chars: Optional[_Chars], section, out) -> None:
        title_start, title_end = section.title_span
        body_start, body_end = section.body_span
        if chars is None or title_end <= title_start or body_end <= body_start:
            self.add_section_attributes(section, out, doc)
            return
        attrs = self.dtype_attrs["section"]
        title_chars = chars.span(title_start, title_end)
        body_chars = chars.span(body_start, body_end)
        if "section_category" in attrs:
            out["section_category"].append(section.category)
        if section.category is not None:
            if "section_title_text" in attrs:
                out["section_title_text"].append(chars.text[title_chars[0] : title_chars[1]])
            if "section_title_start_char" in attrs:
                out["section_title_start_char"].append(title_chars[0])
            if "section_title_end_char" in attrs:
                out["section_title_end_char"].append(title_chars[1])
        else:
            if "section_title_text" in attrs:
                out["section_title_text"].append(None)
            if "section_title_start_char" in attrs:
                out["section_title_start_char"].append(0)
            if "section_title_end_char" in attrs:
                out["section_title_end_char"].append(0)
        if "section_body" in attrs:
            out["section_body"].append(chars.text[body_chars[0] : body_chars[1]])
        if "section_body_start_char" in attrs:
            out["section_body_start_char"].append(body_chars[0])
        if "section_body_end_char" in attrs:
            out["section_body_end_char"].append(body_chars[1])
        if "section_parent" in attrs:
            out["section_parent"].append(section.parent)


def _span_reader(attr: str) -> str:
    """How to read a span attribute as medspaCy's `getattr(ent, attr)` / `getattr(ent._, attr)` would."""
    if attr in ("text", "start_char", "end_char", "label_"):
        return attr
    if hasattr(Span, attr) or not Span.has_extension(attr):
        return "getattr"
    default, method, getter, setter = Span.get_extension(attr)
    if getter is None and method is None and not isinstance(default, Underscore.mutable_types):
        return "default"
    if attr in _SECTION_GETTERS and _is_medspacy_section_getter(attr, getter):
        return "section"
    return "getattr"


def _is_medspacy_section_getter(attr: str, getter) -> bool:
    from medspacy import _extensions

    token_getter = Token.get_extension(attr)[2] if Token.has_extension(attr) else None
    return (
        getter is _extensions._span_extensions[attr]["getter"]
        and token_getter is _extensions._token_extensions[attr]["getter"]
        and Token.get_extension("section")[2] is None
    )


@Language.factory(
    "clinlong_doc_consumer",
    default_config={"dtypes": ("ents",), "dtype_attrs": None, "span_group_name": "medspacy_spans"},
)
def make_clinlong_doc_consumer(
    nlp: Language, name: str, dtypes: Any, dtype_attrs: Optional[Dict[str, List[str]]], span_group_name: str
):
    """medspaCy's DocConsumer (`medspacy_doc_consumer`, same arguments and `doc._.data`), fast on many entities.

    dtypes (Tuple[str, ...]): What to collect: "ents", "group", "section", "context", "doc", or "all".
    dtype_attrs (Optional[Dict[str, List[str]]]): The attributes of each dtype; None for medspaCy's.
    span_group_name (str): The span group read for "group".
    RETURNS (FastDocConsumer): The component.
    """
    if isinstance(dtypes, list):
        dtypes = tuple(dtypes)
    return FastDocConsumer(nlp, name, dtypes=dtypes, dtype_attrs=dtype_attrs, span_group_name=span_group_name)
