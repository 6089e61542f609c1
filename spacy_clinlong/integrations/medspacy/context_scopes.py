"""medspaCy's ConText in time linear in the note: its own graph, run on groups of modifiers that can meet.

medspaCy 1.3's ConText builds one `ConTextGraph` for the whole doc. `update_scopes` calls
`limit_scope` on every pair of modifiers and `apply_modifiers` calls `modifies` on every
target and modifier, so both grow with the square of the note (a modifier per sentence
or so, a target or two per sentence). Yet a modifier can only be limited by a modifier,
or modify a target, that its span or scope meets, and scopes only shrink. So
`ScopedConText` splits the modifiers into groups whose hulls (span plus scope, as first
set) do not meet, and runs medspaCy's `ConTextGraph` on each group with the targets
that meet it. Pairs in different groups never change anything in medspaCy's graph, and
each group keeps medspaCy's order, so scopes, pruning, edges, `ent._.modifiers`, the
flags and `doc._.context_graph` come out as medspaCy's. With ConText's default scope,
the sentence, a group lies within a sentence (two where a modifier's match spans a
sentence break); with a `max_scope` window, within runs of modifiers closer than the
window. One very long sentence is still one group, quadratic in its own modifiers.

This reaches into ConText's private matcher (`_ConText__matcher`), so it runs only on
the medspaCy versions it was checked against and falls back to medspaCy's own
`__call__`, with one warning, on others.
"""

import warnings
from bisect import bisect_right
from functools import lru_cache
from importlib.metadata import version
from typing import Any, List, Sequence, Tuple

from medspacy.context import ConText, ConTextGraph, ConTextModifier
from packaging.specifiers import SpecifierSet
from spacy.tokens import Doc

TESTED_MEDSPACY = SpecifierSet(">=1.3.1,<1.4")

_warned = False


@lru_cache(maxsize=1)
def medspacy_is_tested() -> bool:
    """RETURNS (bool): Whether this was checked against the installed medspaCy's ConText internals."""
    return version("medspacy") in TESTED_MEDSPACY


class ScopedConText(ConText):
    """medspaCy's ConText (same arguments, rules, extensions and results) whose work grows
    with the note's length rather than its square, its rule matcher fast (lower_matcher.py)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if medspacy_is_tested():
            use_lower_matcher(self._ConText__matcher, self.nlp.vocab)

    def __call__(self, doc: Doc, targets: str = None) -> Doc:
        if not medspacy_is_tested():
            _warn_untested()
            return super().__call__(doc, targets)
        # As medspaCy's ConText.__call__, but with the graph built by `scoped_graph`.
        if not targets and self.input_span_type == "ents":
            targets = doc.ents
        elif not targets and self.input_span_type == "group":
            targets = doc.spans[self.span_group_name]
        elif targets:
            targets = getattr(doc._, targets)
        matcher = self._ConText__matcher
        modifiers = [
            ConTextModifier(
                matcher.rule_map[self.nlp.vocab[match_id].text], start, end, doc, max_scope=self.max_scope
            )
            for match_id, start, end in matcher(doc)
        ]
        graph = scoped_graph(targets, modifiers, prune_on_target_overlap=self.prune_on_target_overlap)
        for target, modifier in graph.edges:
            target._.modifiers += (modifier,)
        if self.context_attributes_mapping:
            self.set_context_attributes(graph.edges)
        doc._.context_graph = graph
        return doc


def use_lower_matcher(matcher: Any, vocab: Any) -> None:
    """Give a MedspacyMatcher a `LowerMatcher` (same rules, same matches, same order) for
    its token patterns, in place of spaCy's `Matcher`.

    matcher (MedspacyMatcher): The rule matcher of ConText or the sectionizer.
    vocab (Vocab): The pipeline's vocab.
    """
    from .lower_matcher import LowerMatcher

    lower = LowerMatcher(vocab)
    for rule in matcher.rules:
        if isinstance(rule.pattern, list):
            lower.add(rule._rule_id, [rule.pattern], on_match=rule.on_match)
    matcher._MedspacyMatcher__matcher = lower


def scoped_graph(
    targets: Sequence[Any], modifiers: List[ConTextModifier], *, prune_on_target_overlap: bool = False
) -> ConTextGraph:
    """The graph medspaCy's ConText builds from these targets and modifiers, built group by group.

    targets (Sequence[Span]): The spans ConText may modify, in the doc's order.
    modifiers (List[ConTextModifier]): The matched modifiers, scopes as first set, in match order.
    prune_on_target_overlap (bool): Drop modifiers that overlap a target, as ConText's option.
    RETURNS (ConTextGraph): targets, the modifiers kept and the edges, in medspaCy's order.
    """
    kept = set()
    for group_targets, group_modifiers in modifier_groups(targets, modifiers):
        graph = ConTextGraph(
            targets=group_targets,
            modifiers=group_modifiers,
            prune_on_modifier_overlap=prune_on_target_overlap,
        )
        graph.update_scopes()
        graph.apply_modifiers()
        kept.update(id(modifier) for modifier in graph.modifiers)
    kept_modifiers = [modifier for modifier in modifiers if id(modifier) in kept]
    edges = [(target, modifier) for modifier in kept_modifiers for target in modifier._targets]
    return ConTextGraph(
        targets=targets,
        modifiers=kept_modifiers,
        edges=edges,
        prune_on_modifier_overlap=prune_on_target_overlap,
    )


def modifier_groups(
    targets: Sequence[Any], modifiers: List[ConTextModifier]
) -> List[Tuple[List[Any], List[ConTextModifier]]]:
    """Split modifiers into groups whose hulls do not meet, each with the targets that meet it.

    Two modifiers change each other only where one's span meets the other's hull, and a
    modifier modifies (or, pruning, overlaps) a target only where its hull meets the
    target, so groups share nothing that medspaCy's graph compares. Both lists keep the
    order they came in, which medspaCy's results depend on.

    targets (Sequence[Span]): The spans ConText may modify.
    modifiers (List[ConTextModifier]): The modifiers, scopes as first set.
    RETURNS (List[Tuple[List[Span], List[ConTextModifier]]]): The groups, in the doc's order.
    """
    hulls = [modifier_hull(modifier) for modifier in modifiers]
    bounds: List[List[int]] = []  # [lo, hi) of each group, disjoint and in order
    members: List[List[int]] = []
    for i in sorted(range(len(modifiers)), key=lambda i: hulls[i]):
        lo, hi = hulls[i]
        if bounds and lo < bounds[-1][1]:
            bounds[-1][1] = max(bounds[-1][1], hi)
            members[-1].append(i)
        else:
            bounds.append([lo, hi])
            members.append([i])
    starts = [lo for lo, _ in bounds]
    group_targets: List[List[Any]] = [[] for _ in bounds]
    for target in targets:
        # medspaCy's tuple_overlaps lets an empty span touch a scope at either end.
        lo, hi = target.start, target.end
        if hi <= lo:
            lo, hi = lo - 1, lo + 1
        g = max(bisect_right(starts, lo) - 1, 0)
        while g < len(bounds) and bounds[g][0] < hi:
            if bounds[g][1] > lo:
                group_targets[g].append(target)
            g += 1
    return [(group_targets[g], [modifiers[i] for i in sorted(members[g])]) for g in range(len(bounds))]


def modifier_hull(modifier: ConTextModifier) -> Tuple[int, int]:
    """RETURNS (Tuple[int, int]): The tokens [lo, hi) that a modifier's span and scope cover (never empty)."""
    start, end = modifier.modifier_span
    scope_start, scope_end = modifier.scope_span
    return min(start, end, scope_start, scope_end), max(start, end, scope_start, scope_end)


def _warn_untested() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"clinlong_context was checked against medspaCy {TESTED_MEDSPACY}, not "
            f"{version('medspacy')}: it runs medspaCy's own ConText, whose time grows with "
            f"the square of the note.",
            stacklevel=3,
        )
