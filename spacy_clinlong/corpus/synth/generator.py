"""Deterministic synthetic clinical notes: the offline default corpus.

`generate_notes(n, seed)` returns discharge summaries and progress notes with
headed sections, i2b2-2010 style entities (PROBLEM, TEST, TREATMENT, plus
ALLERGEN) carrying ConText flags, note-level labels and SQuAD v2.0 questions.

Some labels need long context on purpose:
- MEDICATIONS and ALLERGIES items are written with the same line templates and
  drawn from the same drug pool, and both lists can run to hundreds of tokens,
  so whether a drug is a TREATMENT or an ALLERGEN depends on a header that may
  be far away. Their order varies.
- ALLERGY_CONFLICT is 1 when a drug of the final medication list (DISCHARGE
  MEDICATIONS or MEDICATIONS AT END OF VISIT, near the end) is also listed
  under ALLERGIES (near the start). A drug that is both on the admission list
  and an allergen but was stopped does not count.
- DIABETES, HEART_FAILURE, CKD, PNEUMONIA and AFIB are 1 when the note has a
  mention of the condition that is not negated, not about family and not
  hypothetical (historical mentions count: a chronic disease in the past
  medical history is still the patient's). Negated, family and hypothetical
  mentions appear in negative and positive notes alike.

ConText flags follow medspacy's meaning: negated ("denies chest pain", "no
evidence of pneumonia"), historical ("history of ...", past medical and
surgical history items), family ("Mother with breast cancer") and
hypothetical ("return if you develop fever"). Section names are canonical
(`templates.HEADERS` keys, e.g. ALLERGIES, DISCHARGE_MEDICATIONS) while
the printed headers vary. Entities and sections always start and end on
token boundaries of `spacy.blank("en")`. `write_corpus` (in `export`)
describes the files.

Note i depends only on (seed, i): its random source is seeded with a string
of both (string seeds are hashed with SHA-512, independent of
PYTHONHASHSEED), so `generate_notes(10, s)[:5] == generate_notes(5, s)` on
every run and machine.
"""

import datetime
import math
import random
from typing import Any, Callable, Dict, List, Tuple

from . import course as C
from . import sections as S
from . import vocab as V
from .builder import SectionBuilder, assemble
from .qa import make_qas
from .templates import FINAL_MED_SECTIONS

__all__ = ["generate_notes", "note_cats"]

Note = Dict[str, Any]
# Share of notes where each condition is present (ALLERGY_CONFLICT comes out
# near 0.4 from P_NKDA and P_CONFLICT); all labels stay well inside 20%-80%.
P_POSITIVE = {"DIABETES": 0.4, "HEART_FAILURE": 0.38, "CKD": 0.36, "PNEUMONIA": 0.38, "AFIB": 0.36}
P_NKDA = 0.12
P_CONFLICT = 0.45
COND_DRUG_GROUP = {"DIABETES": "dm", "HEART_FAILURE": "hf", "AFIB": "af", "CKD": "ckd"}
FOLLOWUP_BY_COND = {
    "DIABETES": "endocrinology",
    "HEART_FAILURE": "cardiology",
    "CKD": "nephrology",
    "PNEUMONIA": "pulmonology",
    "AFIB": "cardiology",
}
# Reason for the encounter -> presenting symptoms (the chief complaint).
CC_BY_PRIMARY = {
    "PNEUMONIA": ("cough", "fever", "productive cough", "shortness of breath"),
    "HEART_FAILURE": ("shortness of breath", "leg swelling", "dyspnea on exertion", "orthopnea"),
    "AFIB": ("palpitations", "lightheadedness"),
    "urinary tract infection": ("dysuria", "fever", "confusion"),
    "cellulitis of the left leg": ("leg swelling", "rash", "fever"),
    "acute kidney injury": ("poor appetite", "generalized weakness"),
    "hyponatremia": ("confusion", "generalized weakness"),
    "hypokalemia": ("generalized weakness", "palpitations"),
    "acute blood loss anemia": ("melena", "lightheadedness"),
    "elevated troponin": ("chest pain",),
    "diarrhea": ("diarrhea", "abdominal pain"),
    "hospital delirium": ("confusion",),
    "deconditioning": ("generalized weakness", "fatigue"),
}


def _target_words(rng: random.Random) -> int:
    """Draw a length target: mostly 480-3,300 words, some near 230 and 4,600."""
    u = rng.random()
    if u < 0.08:
        return int(rng.uniform(200, 480))
    if u < 0.9:
        return int(math.exp(rng.uniform(math.log(480), math.log(3300))))
    return int(rng.uniform(3300, 4550))


def _list_size(rng: random.Random, target: int) -> int:
    # Long notes get long lists, so late items sit hundreds of tokens after the header.
    return max(1 if target < 500 else 2, min(30, round(rng.uniform(2.0, 7.5) * target / 1000) + 1))


def _home_list(
    rng: random.Random, pos: Dict[str, bool], comorbid: List[Any], n: int, exclude: Tuple[str, ...] = ()
) -> List[str]:
    """Drugs a patient with these conditions and comorbidities takes at home, `n` or more."""
    chosen: List[str] = []
    for label, group in sorted(COND_DRUG_GROUP.items()):
        if pos[label]:
            names = [d[0] for d in V.DRUGS if d[3] == group and d[0] not in exclude]
            chosen += rng.sample(names, min(len(names), rng.randint(1, 2)))
    lowered = {name.lower(): name for name in V.DRUG_NAMES}
    for _, _, txs in comorbid:
        options = [lowered[t] for t in txs if t in lowered and lowered[t] not in chosen + list(exclude)]
        if options:
            chosen.append(rng.choice(options))
    general = [d[0] for d in V.DRUGS if d[3] in ("gen", "htn") and d[0] not in chosen + list(exclude)]
    chosen += rng.sample(general, max(0, min(len(general), n - len(chosen))))
    return chosen


def _drugs(rng: random.Random, plan: Dict[str, Any]) -> None:
    """Choose admission meds, final meds and allergies (with or without a conflict).

    Allergies are drawn the way a home list is, for another patient (conditions
    and comorbidities drawn afresh), so a drug's name says no more about which
    list it is on than the lines' templates do: only the header does.
    """
    by_name = {d[0]: d for d in V.DRUGS}
    chosen = _home_list(rng, plan["pos"], plan["comorbid"], _list_size(rng, plan["target"]))
    admission = chosen[:]
    rng.shuffle(admission)
    final = [d for d in admission if rng.random() > 0.1] or admission[:2]
    if plan["pos"]["PNEUMONIA"]:
        final.append(rng.choice([d[0] for d in V.DRUGS if d[3] == "abx"]))
    allergies: List[str] = []
    conflict = False
    if rng.random() >= P_NKDA:
        n_all = _list_size(rng, plan["target"])
        # A stopped home drug that is also an allergen: same drug in both lists, no conflict.
        if rng.random() < 0.35 and len(final) > 3:
            stopped = rng.choice(final)
            final.remove(stopped)
            allergies.append(stopped)
        taken = tuple(sorted(set(admission) | set(final)))
        kept = len(allergies)
        other_pos = {lab: rng.random() < P_POSITIVE[lab] for lab in V.CONDITION_LABELS}
        other_comorbid = rng.sample(V.CHRONIC_DX, len(plan["comorbid"]))
        others = _home_list(rng, other_pos, other_comorbid, n_all - kept, exclude=taken)
        rng.shuffle(others)
        allergies += others[: max(0, n_all - kept)]
        for i in range(kept, len(allergies)):
            if rng.random() < 0.1:
                allergies[i] = rng.choice(
                    [a for a in V.NON_DRUG_ALLERGENS if a not in allergies] or ["Latex"]
                )
        rng.shuffle(allergies)
        conflict = rng.random() < P_CONFLICT
        if conflict:
            for drug in rng.sample(final, rng.randint(1, min(2, len(final)))):
                allergies.insert(rng.randint(0, len(allergies)), drug)
    plan["admission_meds"] = admission
    plan["allergies"] = allergies
    plan["final_meds"] = [(d, rng.choice(by_name[d][1]), rng.choice(by_name[d][2])) for d in final]
    plan["ctx"]["mymeds"] = [d.lower() for d in final]


def _vitals(rng: random.Random, brief: bool) -> str:
    """RETURNS (str): A vital signs line, abbreviated or spelled out."""
    temp, hr, rr = f"{rng.uniform(97.6, 101.8):.1f}", rng.randint(58, 124), rng.randint(14, 28)
    bp, sat = f"{rng.randint(98, 178)}/{rng.randint(52, 98)}", rng.randint(86, 99)
    o2 = rng.choice(("room air", "2 L nasal cannula", "4 L nasal cannula"))
    if brief:
        return f"T {temp} F, HR {hr}, BP {bp}, RR {rr}, SpO2 {sat}% on {o2}"
    return (
        f"temperature {temp} F, heart rate {hr}, blood pressure {bp}, respiratory rate {rr}, "
        f"and oxygen saturation {sat}% on {o2}"
    )


def _followups(rng: random.Random, pos: Dict[str, bool]) -> List[str]:
    """RETURNS (List[str]): Follow-up clinics: primary care and those of present conditions."""
    wanted = ["primary care"] + [FOLLOWUP_BY_COND[lab] for lab in V.CONDITION_LABELS if pos[lab]]
    wanted += rng.sample([s for s in V.SPECIALTIES if s not in wanted], 1)
    ordered = []
    for specialty in wanted:
        if specialty not in ordered:
            ordered.append(specialty)
    return ordered[: rng.randint(1, 4)]


def _make_plan(rng: random.Random) -> Dict[str, Any]:
    """Draw everything a note is about before any text is written."""
    target = _target_words(rng)
    # Progress notes are rarely very long; the longest notes are discharge summaries.
    p_progress = 1.0 if target < 380 else 0.5 if target < 2000 else 0.25 if target < 2800 else 0.0
    note_type = "progress_note" if rng.random() < p_progress else "discharge_summary"
    female = rng.random() < 0.5
    last = rng.choice(V.LAST_NAMES)
    ctx = {
        "He": "She" if female else "He",
        "he": "she" if female else "he",
        "His": "Her" if female else "His",
        "his": "her" if female else "his",
        "him": "her" if female else "him",
        "man": "woman" if female else "man",
        "Pt": f"{'Ms.' if female else 'Mr.'} {last}",
        "age": str(rng.randint(34, 93)),
    }
    if int(ctx["age"]) >= 70:
        ctx["Elderly"] = "Elderly"
    pos = {lab: rng.random() < P_POSITIVE[lab] for lab in V.CONDITION_LABELS}
    subtype = {lab: rng.randrange(len(V.CONDITION_SUBTYPES[lab])) for lab in V.CONDITION_LABELS}
    place: Dict[str, Tuple[str, ...]] = {}
    distract: Dict[str, Any] = {}
    neg_at: Dict[str, str] = {}
    for lab in V.CONDITION_LABELS:
        slots = ("hpi", "course", "dx") if lab == "PNEUMONIA" else ("hpi", "pmh", "course", "dx")
        place[lab] = tuple(rng.sample(slots, rng.randint(1, 3))) if pos[lab] else ()
        # A present condition is never negated or hypothetical, but may run in the family.
        kinds = ("fam",) if pos[lab] else ("neg", "fam", "hyp")
        distract[lab] = rng.choice(kinds) if rng.random() < (0.25 if pos[lab] else 0.6) else None
        neg_at[lab] = rng.choice(("hpi", "course"))
    acute_primary = [d for d in V.ACUTE_DX if d[0] in CC_BY_PRIMARY]
    primary = next(
        (lab for lab in ("PNEUMONIA", "HEART_FAILURE", "AFIB") if pos[lab] and rng.random() < 0.8),
        rng.choice(acute_primary)[0],
    )
    cc_pool = [rng.choice(CC_BY_PRIMARY[primary])]
    cc_pool += rng.sample([s for s in V.SYMPTOMS[:30] if s != cc_pool[0]], 2)
    n_comorbid = max(1, min(10, round(target / 400) + rng.randint(0, 2)))
    # Sex-specific problems only where they fit.
    chronic = [d for d in V.CHRONIC_DX if not (female and d[0] == "benign prostatic hyperplasia")]
    comorbid = rng.sample(chronic, n_comorbid)
    acute = rng.sample([d for d in V.ACUTE_DX if d[0] != primary], rng.randint(0, 1 + target // 1500))
    imaging = {"chest x-ray"} if pos["PNEUMONIA"] or pos["HEART_FAILURE"] or rng.random() < 0.5 else set()
    imaging.update(rng.sample([t for t, _ in V.IMAGING[1:]], rng.randint(0, 2 if target > 600 else 0)))
    echo_p = 0.9 if pos["HEART_FAILURE"] else 0.5 if pos["AFIB"] else 0.25
    plan = {
        "target": target,
        "note_type": note_type,
        "ctx": ctx,
        "pos": pos,
        "place": place,
        "distract": distract,
        "neg_at": neg_at,
        "cc_pool": cc_pool,
        "imaging": imaging,
        "echo": rng.random() < echo_p,
        "used_dx": [],
        "hpi_used": [],
        "day": 1,
        "lab_day": 1,
        "primary": primary,
        "comorbid": comorbid,
        "acute": acute,
        "density": min(1.0, target / 1500),
        "subtype": subtype,
        # Brief notes (the short tail of the length distribution) use the shortest forms.
        "brief": target < 380,
        "followups": _followups(rng, pos)[: 1 if target < 500 else 4],
        "vitals": _vitals(rng, brief=target < 500 or rng.random() < 0.4),
    }
    _drugs(rng, plan)
    return plan


def _preamble(rng: random.Random, plan: Dict[str, Any]) -> str:
    """Title lines; written last so the length of stay covers every hospital day used."""
    ctx = plan["ctx"]
    admitted = datetime.date(rng.randint(2012, 2023), rng.randint(1, 12), rng.randint(1, 28))
    who = f"Patient: {ctx['Pt']}, {ctx['age']}-year-old {ctx['man']}"
    if plan["note_type"] == "discharge_summary":
        stay = max(plan["day"] + 1, plan["lab_day"] + 1, rng.randint(2, 6))
        discharged = admitted + datetime.timedelta(days=stay)
        return (
            f"DISCHARGE SUMMARY\nAdmission Date: {admitted.isoformat()}\n"
            f"Discharge Date: {discharged.isoformat()}\nService: Medicine\n{who}\n"
        )
    seen = admitted + datetime.timedelta(days=rng.randint(1, 4))
    return (
        f"PROGRESS NOTE\nDate of Service: {seen.isoformat()}\nSetting: Inpatient medicine, daily progress note\n"
        f"Admission Date: {admitted.isoformat()}\n{who}\n"
    )


Expander = Tuple[int, SectionBuilder, Callable[[SectionBuilder, random.Random, Dict[str, Any]], bool]]


def _sections(
    rng: random.Random, plan: Dict[str, Any]
) -> Tuple[List[SectionBuilder], SectionBuilder, List[Expander]]:
    """Write the base sections in order.

    rng (random.Random): Random source of the note.
    plan (Dict[str, Any]): The note plan.
    RETURNS (Tuple[List[SectionBuilder], SectionBuilder, List[Expander]]): The
        sections, the course or A&P section, and (weight, section, grow
        function) triples used to reach the length target.
    """
    progress = plan["note_type"] == "progress_note"
    p_opt = max(0.0, min(0.9, (plan["target"] - 350) / 1500))
    secs: List[SectionBuilder] = []
    if not progress:
        secs.append(S.chief_complaint(rng, plan))
    hpi = S.hpi(rng, plan, progress)
    secs += [hpi, S.past_medical_history(rng, plan)]
    if not progress and rng.random() < p_opt:
        secs.append(S.past_surgical_history(rng, plan))
    lists = [
        S.shared_list(rng, plan, "MEDICATIONS", plan["admission_meds"], "TREATMENT"),
        S.shared_list(rng, plan, "ALLERGIES", plan["allergies"], "ALLERGEN"),
    ]
    rng.shuffle(lists)
    secs += lists
    if rng.random() < p_opt:
        secs.append(S.social_history(rng, plan))
    if (S.distractors(plan, "fam") and plan["target"] >= 300) or rng.random() < p_opt:
        secs.append(S.family_history(rng, plan))
    if rng.random() < p_opt:
        secs.append(S.review_of_systems(rng, plan))
    secs.append(S.physical_exam(rng, plan))
    results = C.results(rng, plan)
    secs.append(results)
    body = C.assessment_and_plan(rng, plan) if progress else C.hospital_course(rng, plan)
    secs.append(body)
    expanders: List[Expander] = [
        (2, hpi, S.expand_hpi),
        (1, results, C.expand_results),
        (7, body, C.expand_course),
    ]
    return secs, body, expanders


def _make_note(seed: int, index: int) -> Note:
    """Generate note `index` of the corpus `seed`.

    seed (int): Corpus seed.
    index (int): Position of the note in the corpus.
    RETURNS (Note): The note dict.
    """
    rng = random.Random(f"spacy-clinlong-synth:{seed}:{index}")
    plan = _make_plan(rng)
    secs, body, expanders = _sections(rng, plan)
    tail: List[SectionBuilder] = []
    progress = plan["note_type"] == "progress_note"
    if not progress:
        tail += [
            S.discharge_diagnoses(rng, plan),
            S.final_medications(rng, plan),
            S.instructions(rng, plan),
            S.follow_up(rng, plan),
        ]
    else:
        tail.append(S.final_medications(rng, plan))
    # Words still to come after the loop: preamble, closing lines, ED paragraph.
    fixed = 22 + sum(s.words for s in tail) + (40 if progress else 35)
    while expanders and fixed + sum(s.words for s in secs) < plan["target"]:
        pick = rng.choices(expanders, weights=[w for w, _, _ in expanders])[0]
        if not pick[2](pick[1], rng, plan):
            expanders.remove(pick)
    if progress:
        C.close_assessment(body, rng, plan)
    else:
        S.finish_hpi(secs[1], rng, plan)
    note_id = f"synth-{seed}-{index:06d}"
    built = assemble(_preamble(rng, plan), secs + tail)
    return {
        "id": note_id,
        "note_type": plan["note_type"],
        "text": built["text"],
        "sections": built["sections"],
        "entities": built["entities"],
        "cats": note_cats(built["text"], built["entities"], built["sections"]),
        "qas": make_qas(rng, note_id, built["text"], built["marks"], plan["note_type"]),
    }


def note_cats(text: str, entities: List[Dict[str, Any]], sections: List[Dict[str, Any]]) -> Dict[str, int]:
    """Compute the note-level labels from the annotations (the definition, not a model).

    text (str): Note text.
    entities (List[Dict[str, Any]]): Entities with ConText flags.
    sections (List[Dict[str, Any]]): Section spans.
    RETURNS (Dict[str, int]): Label -> 0/1 for every label in `CAT_LABELS`.
    """
    terms = {lab: {t.lower() for t in V.CONDITION_TERMS[lab]} for lab in V.CONDITION_LABELS}
    cats = {lab: 0 for lab in V.CAT_LABELS}
    allergens, final = set(), set()
    for ent in entities:
        mention = text[ent["start"] : ent["end"]].lower()
        if ent["label"] == "PROBLEM" and not (ent["negated"] or ent["family"] or ent["hypothetical"]):
            for lab in V.CONDITION_LABELS:
                if mention in terms[lab]:
                    cats[lab] = 1
        for sec in sections:
            if sec["start"] <= ent["start"] and ent["end"] <= sec["end"]:
                if sec["name"] == "ALLERGIES" and ent["label"] == "ALLERGEN":
                    allergens.add(mention)
                elif sec["name"] in FINAL_MED_SECTIONS and ent["label"] == "TREATMENT":
                    final.add(mention)
    cats["ALLERGY_CONFLICT"] = int(bool(allergens & final))
    return cats


def generate_notes(n: int, seed: int = 0) -> List[Note]:
    """Generate `n` synthetic clinical notes, deterministically.

    n (int): Number of notes (>= 0).
    seed (int): Corpus seed. Note i depends only on (seed, i).
    RETURNS (List[Note]): Dicts with id, note_type, text, sections, entities
        (start, end, label, negated, historical, family, hypothetical), cats and qas.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_make_note(seed, i) for i in range(n)]
