"""Writers for the history, list and closing sections of a synthetic note.

Each writer takes `(rng, plan)` and returns a `SectionBuilder`; `plan` is the
per-note dict made by `generator._make_plan` (conditions, drugs, pronouns in
`plan["ctx"]`). Writers only call `rng` in a fixed order, so a note is fully
determined by its seed.
"""

import random
from typing import Any, Dict, List, Sequence

from . import templates as T
from . import vocab as V
from .builder import SectionBuilder

Plan = Dict[str, Any]
POOLS = T.POOLS
# What the emergency department gave, by reason for admission.
ED_TREATMENTS = {
    "PNEUMONIA": ("IV ceftriaxone", "IV levofloxacin", "supplemental oxygen"),
    "HEART_FAILURE": ("IV furosemide", "supplemental oxygen", "nitroglycerin"),
    "AFIB": ("IV diltiazem", "IV metoprolol"),
    "other": ("IV fluids", "a 1 liter normal saline bolus", "acetaminophen", "ondansetron", "IV morphine"),
}


def new_section(rng: random.Random, name: str, headers: Sequence[str] = ()) -> SectionBuilder:
    """Start a section with one of its header variants.

    rng (random.Random): Random source of the note.
    name (str): Canonical section name (a key of `HEADERS`).
    headers (Sequence[str]): Header variants to choose from instead of all of them.
    RETURNS (SectionBuilder): The empty section.
    """
    return SectionBuilder(name, rng.choice(headers or T.HEADERS[name]))


def cond_term(rng: random.Random, plan: Plan, label: str) -> str:
    """RETURNS (str): A surface form of the note's subtype of a present condition."""
    return rng.choice(V.CONDITION_SUBTYPES[label][plan["subtype"][label]])


def cond_sentence(
    sec: SectionBuilder, rng: random.Random, plan: Plan, label: str, templates: Sequence[str]
) -> None:
    """Write one condition mention using a flagged template (negated, family, hypothetical).

    sec (SectionBuilder): Section to write into.
    rng (random.Random): Random source of the note.
    plan (Plan): The note plan.
    label (str): The condition label whose terms fill `{P:cond...}`.
    templates (Sequence[str]): Templates to choose from.
    """
    ctx = dict(plan["ctx"], cond=V.CONDITION_TERMS[label])
    sec.fill(rng.choice(templates), rng, ctx, POOLS).add(" ")


def distractors(plan: Plan, kind: str) -> List[str]:
    """RETURNS (List[str]): Condition labels with a distractor mention of `kind` (neg, fam, hyp)."""
    return [label for label in V.CONDITION_LABELS if plan["distract"][label] == kind]


def history_terms(rng: random.Random, plan: Plan, slot: str, current: bool = False) -> List[str]:
    """Condition terms placed at `slot` plus a few other diagnoses, shuffled.

    rng (random.Random): Random source of the note.
    plan (Plan): The note plan.
    slot (str): Placement slot ("hpi", "dx" ...).
    current (bool): Whether an acute condition (pneumonia) may be listed; a
        "history of" list only takes chronic ones.
    RETURNS (List[str]): The terms.
    """
    terms = [
        cond_term(rng, plan, lab)
        for lab in V.CONDITION_LABELS
        if slot in plan["place"][lab] and (current or lab != "PNEUMONIA")
    ]
    comorbid = [d[0] for d in plan["comorbid"]]
    terms += rng.sample(comorbid, min(len(comorbid), rng.randint(1, 3)))
    rng.shuffle(terms)
    return terms


def write_entity_list(
    sec: SectionBuilder, items: Sequence[str], label: str, flags: Sequence[str] = ()
) -> None:
    """Write "a, b, and c" as separate entities."""
    for i, item in enumerate(items):
        if i:
            sec.add(
                ", and " if i == len(items) - 1 and len(items) > 2 else (" and " if len(items) == 2 else ", ")
            )
        sec.ent(item, label, flags)


def chief_complaint(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): CHIEF COMPLAINT, one or two symptoms (QA key "cc")."""
    sec = new_section(rng, "CHIEF_COMPLAINT")
    first = plan["cc_pool"][0]
    sec.ent(first[:1].upper() + first[1:], "PROBLEM", mark="cc")
    if rng.random() < 0.4:
        second = rng.choice([o for o in V.SYMPTOMS if o != first])
        sec.add(" and ").ent(second, "PROBLEM")
    sec.add(".")
    return sec


def hpi(rng: random.Random, plan: Plan, progress: bool) -> SectionBuilder:
    """RETURNS (SectionBuilder): HPI (discharge summary) or SUBJECTIVE (progress note)."""
    ctx = plan["ctx"]
    sec = new_section(rng, "SUBJECTIVE" if progress else "HISTORY_OF_PRESENT_ILLNESS")
    sec.add(f"{ctx['Pt']} is a {ctx['age']}-year-old {ctx['man']} with a history of ")
    write_entity_list(sec, history_terms(rng, plan, "hpi"), "PROBLEM", ("historical",))
    if progress:
        sec.add(" who is being followed for ").ent(plan["cc_pool"][0], "PROBLEM").add(". ")
        sec.fill(
            rng.choice(
                (
                    "Overnight, {he} slept well and had no acute events. ",
                    "Since the last visit, {he} reports feeling somewhat better. ",
                    "Per nursing, {he} was up to the chair twice yesterday. ",
                )
            ),
            rng,
            ctx,
            POOLS,
        )
    else:
        sec.add(" who presents with ").ent(plan["cc_pool"][0], "PROBLEM")
        sec.add(f" of {rng.choice(POOLS['dur'])} duration. ")
    if "hpi" in plan["place"]["PNEUMONIA"]:
        sec.add("Imaging in the emergency department was concerning for ").ent(
            cond_term(rng, plan, "PNEUMONIA"), "PROBLEM"
        ).add(". ")
    for label in distractors(plan, "neg"):
        if plan["neg_at"][label] == "hpi":
            cond_sentence(sec, rng, plan, label, T.NEG_COND)
    for _ in range(rng.randint(0, 1 + round(2 * plan["density"]))):
        expand_hpi(sec, rng, plan)
    return sec


def finish_hpi(sec: SectionBuilder, rng: random.Random, plan: Plan) -> None:
    """Close a discharge HPI with the emergency department course (after any filler)."""
    ctx = plan["ctx"]
    sec.add(
        f"\nIn the emergency department, initial vital signs were {plan['vitals']}. {ctx['He']} received "
    )
    sec.ent(rng.choice(ED_TREATMENTS.get(plan["primary"], ED_TREATMENTS["other"])), "TREATMENT")
    sec.add(" and was admitted to the medicine service for further management.")


def expand_hpi(sec: SectionBuilder, rng: random.Random, plan: Plan) -> bool:
    """Add one narrative sentence, not used before in the note, to an HPI or SUBJECTIVE.

    RETURNS (bool): False when every filler sentence has been used.
    """
    unused = [t for t in T.HPI_FILLERS if t not in plan["hpi_used"]]
    if not unused:
        return False
    template = rng.choice(unused)
    plan["hpi_used"].append(template)
    sec.fill(template, rng, plan["ctx"], POOLS).add(" ")
    return True


def past_medical_history(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): PMH list; chronic label conditions are flagged historical."""
    sec = new_section(rng, "PAST_MEDICAL_HISTORY")
    items = [cond_term(rng, plan, lab) for lab in V.CONDITION_LABELS if "pmh" in plan["place"][lab]]
    items += [d[0] for d in plan["comorbid"]]
    rng.shuffle(items)
    for item in items:
        sec.add("- ").ent(item[:1].upper() + item[1:], "PROBLEM", ("historical",))
        roll = rng.random()
        if roll < 0.25:
            sec.add(f", diagnosed in {rng.choice(POOLS['year'])}")
        elif roll < 0.4:
            sec.add(f", followed by {rng.choice(V.SPECIALTIES)}")
        sec.add("\n")
    return sec


def past_surgical_history(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): PSH list of historical procedures."""
    sec = new_section(rng, "PAST_SURGICAL_HISTORY")
    options = [x for x in V.SURGERIES if not (x == "hysterectomy" and plan["ctx"]["man"] == "man")]
    for item in rng.sample(options, rng.randint(1, 4)):
        sec.add("- Status post ").ent(item, "TREATMENT", ("historical",))
        sec.add(f" ({rng.choice(POOLS['year'])})\n")
    return sec


def shared_list(
    rng: random.Random, plan: Plan, name: str, items: Sequence[str], label: str
) -> SectionBuilder:
    """Write MEDICATIONS or ALLERGIES with the shared line templates.

    rng (random.Random): Random source of the note.
    plan (Plan): The note plan.
    name (str): "MEDICATIONS" or "ALLERGIES".
    items (Sequence[str]): Drug (or allergen) names.
    label (str): TREATMENT or ALLERGEN.
    RETURNS (SectionBuilder): The section.
    """
    headers = T.HEADERS[name]
    if name == "MEDICATIONS":
        headers = headers[3:] if plan["note_type"] == "progress_note" else headers[:3]
    sec = new_section(rng, name, headers)
    if not items:
        return sec.add(rng.choice(T.NKDA))
    ctx = plan["ctx"]
    templates = T.SHARED_LIST_ITEMS[:4] if plan["brief"] else T.SHARED_LIST_ITEMS
    if not plan["brief"]:
        sec.fill(rng.choice(T.SHARED_LIST_INTROS), rng, ctx, POOLS)
    numbered = rng.random() < 0.75
    mark = "allergy" if label == "ALLERGEN" else None
    for i, item in enumerate(items, 1):
        before, after = rng.choice(templates).split("{DRUG}")
        item_ctx = dict(ctx, n=f"{i}." if numbered else "-")
        sec.fill(before, rng, item_ctx, POOLS).ent(item, label, mark=mark)
        sec.fill(after, rng, item_ctx, POOLS).add("\n")
    return sec


def social_history(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): SOCIAL HISTORY lines (no entities)."""
    sec = new_section(rng, "SOCIAL_HISTORY")
    for options in rng.sample(T.SOCIAL_LINES, rng.randint(2, 5)):
        sec.fill(rng.choice(options), rng, plan["ctx"], POOLS).add(" ")
    return sec


def family_history(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): FAMILY HISTORY with family-flagged problems."""
    sec = new_section(rng, "FAMILY_HISTORY")
    ctx = plan["ctx"]
    for _ in range(rng.randint(0, round(3 * plan["density"]))):
        relative = rng.choice(V.RELATIVES)
        male = relative.split()[-1] in ("father", "brother", "grandfather", "uncle")
        unfit = ("breast cancer", "ovarian cancer") if male else ("prostate cancer",)
        fdx = [d for d in V.FAMILY_DX if d not in unfit]
        sec.fill("{^relative} with {P:fdx|fam}.\n", rng, dict(ctx, relative=relative, fdx=fdx), POOLS)
    for label in distractors(plan, "fam"):
        cond_sentence(sec, rng, plan, label, T.FAM_COND)
        sec.add("\n")
    if rng.random() < 0.3:
        sec.fill("No family history of {P:fdx|neg,fam}.", rng, ctx, POOLS)
    return sec


def review_of_systems(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): REVIEW OF SYSTEMS, mostly negated symptoms."""
    sec = new_section(rng, "REVIEW_OF_SYSTEMS")
    for line in T.ROS_LINES:
        if rng.random() < 0.1 + 0.7 * plan["density"]:
            sec.fill(line, rng, plan["ctx"], POOLS).add("\n")
    return sec.add(T.ROS_CLOSING)


def physical_exam(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): PHYSICAL EXAM with vitals and one line per examined system."""
    sec = new_section(rng, "PHYSICAL_EXAM")
    sec.add(f"Vitals: {plan['vitals']}.\n")
    for options in T.EXAM_LINES:
        if rng.random() < 0.1 + 0.8 * plan["density"]:
            sec.fill(rng.choice(options), rng, plan["ctx"], POOLS).add("\n")
    return sec


def final_medications(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): The last medication list, with doses (QA keys "dose:NAME")."""
    name = "MEDICATIONS_AT_END_OF_VISIT" if plan["note_type"] == "progress_note" else "DISCHARGE_MEDICATIONS"
    sec = new_section(rng, name)
    style = rng.randint(0, 2)
    home = set(plan["admission_meds"])
    for i, (drug, dose, sig) in enumerate(plan["final_meds"], 1):
        sec.add(f"{i}. ").ent(drug, "TREATMENT")
        sec.add(": " if style == 1 else " ").mark(f"dose:{drug}", dose)
        sec.add(f", {sig}" if style == 2 else f" {sig}")
        if style == 2:
            sec.add(f". Dispense: {rng.choice((30, 60, 90))}, refills: {rng.randint(0, 3)}")
        note = "" if rng.random() < 0.6 else " (Unchanged)" if drug in home else " (New)"
        sec.add("." + note)
        sec.add("\n")
    return sec


def discharge_diagnoses(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): DISCHARGE DIAGNOSES, primary and secondary."""
    sec = new_section(rng, "DISCHARGE_DIAGNOSES")
    primary = plan["primary"]
    items = [
        cond_term(rng, plan, lab)
        for lab in V.CONDITION_LABELS
        if "dx" in plan["place"][lab] and lab != primary
    ]
    items += [d for d in plan["used_dx"] if d != primary]
    items += [d[0] for d in plan["comorbid"] if d[0] not in items]
    first = cond_term(rng, plan, primary) if primary in V.CONDITION_TERMS else primary
    sec.add("Primary: ").ent(first[:1].upper() + first[1:], "PROBLEM").add("\nSecondary:\n")
    for item in items[: rng.randint(2, 8)]:
        sec.add("- ").ent(item, "PROBLEM").add("\n")
    return sec


def instructions(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): DISCHARGE INSTRUCTIONS with hypothetical mentions."""
    sec = new_section(rng, "DISCHARGE_INSTRUCTIONS")
    sec.fill("Dear {Pt}, you were admitted to the hospital for ", rng, plan["ctx"], POOLS)
    sec.ent(plan["cc_pool"][0], "PROBLEM").add(". ")
    for line in rng.sample(T.INSTRUCTION_LINES, rng.randint(2, 4)):
        sec.fill(line, rng, plan["ctx"], POOLS).add(" ")
    for label in distractors(plan, "hyp"):
        cond_sentence(sec, rng, plan, label, T.HYP_COND_YOU)
    return sec


def follow_up(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): FOLLOW-UP appointments (QA keys "followup:SPECIALTY")."""
    sec = new_section(rng, "FOLLOW_UP")
    for specialty in plan["followups"]:
        when = rng.choice(("in 1 week", "in 2 weeks", "in 3 weeks", "in 1 month", "in 6 weeks"))
        sec.add(f"- {specialty[:1].upper() + specialty[1:]}: ").mark(f"followup:{specialty}", when)
        sec.add(
            rng.choice(("", ", appointment to be scheduled by the clinic", ", please call to confirm")) + "\n"
        )
    return sec
