"""Writers for results, hospital course and assessment/plan of a synthetic note.

Labelled conditions get a problem paragraph ("# Congestive heart failure: ...")
when the plan places them in the course; other problems and day-by-day
paragraphs are the filler used to reach the note's length target.
"""

import random
from typing import List, Optional, Tuple

from . import templates as T
from . import vocab as V
from .builder import SectionBuilder
from .sections import (
    POOLS,
    Plan,
    cond_sentence,
    cond_term,
    distractors,
    history_terms,
    new_section,
    write_entity_list,
)

DM_DRUGS = tuple(d[0].lower() for d in V.DRUGS if d[3] == "dm")
ABX_DRUGS = tuple(d[0].lower() for d in V.DRUGS if d[3] == "abx")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _note_drug(plan: Plan, names: Tuple[str, ...], fallback: str) -> str:
    """RETURNS (str): The first final-list drug among `names` (lowercased), else `fallback`."""
    mine = [d.lower() for d, _, _ in plan["final_meds"] if d.lower() in names]
    return mine[0] if mine else fallback


def _lab_value(rng: random.Random, plan: Plan, name: str, low: float, high: float, decimals: int) -> str:
    # Values follow the conditions so results and labels agree.
    pos = plan["pos"]
    if name == "creatinine":
        low, high = (1.8, 3.4) if pos["CKD"] else (0.7, 1.3)
    elif name == "BNP":
        low, high = (650, 2400) if pos["HEART_FAILURE"] else (20, 180)
    elif name == "glucose":
        low, high = (160, 340) if pos["DIABETES"] else (75, 130)
    elif name == "white blood cell count" and pos["PNEUMONIA"]:
        low, high = 12.0, 19.5
    value = rng.uniform(low, high)
    return f"{value:.{decimals}f}"


def write_labs(sec: SectionBuilder, rng: random.Random, plan: Plan, heading: str, marked: bool) -> None:
    """Write one lab panel; with `marked`, values are recorded under QA keys "lab:NAME"."""
    chosen = rng.sample(V.LABS, rng.randint(3, 3 + round(6 * plan["density"])))
    by_line = rng.random() < 0.5
    sec.add(heading + (":\n" if by_line else ": "))
    for i, (name, unit, low, high, dec) in enumerate(chosen):
        if not by_line and i:
            sec.add(", ")
        sec.ent(_cap(name) if by_line or i == 0 else name, "TEST")
        value = _lab_value(rng, plan, name, low, high, dec) + (f" {unit}" if unit else "")
        sec.add(": " if by_line else " ")
        if marked:
            sec.mark(f"lab:{name}", value)
        else:
            sec.add(value)
        sec.add("\n" if by_line else "")
    sec.add("" if by_line else ".\n")


def _imaging_result(sec: SectionBuilder, rng: random.Random, plan: Plan, test: str, normal: str) -> None:
    pos = plan["pos"]
    if test == "chest x-ray" and pos["PNEUMONIA"]:
        finding = V.PNEUMONIA_FINDINGS[plan["subtype"]["PNEUMONIA"]]
        sec.ent(finding, "PROBLEM", mark=f"result:{test}")
    elif test == "chest x-ray" and pos["HEART_FAILURE"] and rng.random() < 0.6:
        sec.ent("pulmonary vascular congestion", "PROBLEM", mark=f"result:{test}")
    else:
        start = sec.pos
        sec.add("no ").ent(normal[3:], "PROBLEM", ("negated",)).add_mark(f"result:{test}", start, sec.pos)


def results(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): Labs, imaging and echocardiogram results."""
    sec = new_section(rng, "RESULTS")
    headings = (
        ("Labs this morning", "Morning labs")
        if plan["note_type"] == "progress_note"
        else ("Admission labs", "Labs on admission", "Initial labs")
    )
    write_labs(sec, rng, plan, rng.choice(headings), True)
    if plan["pos"]["DIABETES"] or rng.random() < 0.2:
        a1c = f"{rng.uniform(7.2, 11.5) if plan['pos']['DIABETES'] else rng.uniform(4.8, 5.6):.1f}%"
        sec.ent("Hemoglobin A1c", "TEST").add(": ").mark("lab:hemoglobin A1c", a1c).add("\n")
    studies = [s for s in V.IMAGING if s[0] in plan["imaging"]]
    for test, normal in studies:
        sec.ent(_cap(test), "TEST").add(
            rng.choice((": ", " on admission: ", f" ({rng.choice(POOLS['month'])}): "))
        )
        _imaging_result(sec, rng, plan, test, normal)
        sec.add(".\n")
    if plan["echo"]:
        name = rng.choice(("Transthoracic echocardiogram", "Echocardiogram"))
        sec.ent(name, "TEST").add(": ")
        reduced = plan["pos"]["HEART_FAILURE"] and plan["subtype"]["HEART_FAILURE"] == 0
        preserved = plan["pos"]["HEART_FAILURE"] and not reduced
        ef = f"{rng.choice((20, 25, 30, 35, 40))}%" if reduced else f"{rng.choice((55, 60, 65))}%"
        lead = (
            "ejection fraction of "
            if reduced
            else "preserved ejection fraction of "
            if preserved
            else "normal ejection fraction of "
        )
        tail = (
            " with global hypokinesis"
            if reduced
            else " with grade 2 diastolic dysfunction"
            if preserved
            else ""
        )
        start = sec.pos
        sec.add(lead).mark("ef", ef).add(tail)
        sec.add_mark("result:echocardiogram", start, sec.pos)
        if not plan["pos"]["HEART_FAILURE"]:
            sec.add(", no ").ent("wall motion abnormalities", "PROBLEM", ("negated",))
        sec.add(".\n")
    return sec


def condition_paragraph(sec: SectionBuilder, rng: random.Random, plan: Plan, label: str) -> None:
    """Write an affirmed problem paragraph for a labelled condition."""
    ctx = plan["ctx"]
    he, his = ctx["He"], ctx["his"]
    discharge = plan["note_type"] == "discharge_summary"
    sec.add("# ").ent(_cap(cond_term(rng, plan, label)), "PROBLEM").add(": ")
    if label == "HEART_FAILURE":
        sec.fill(
            "{He} presented with {P:hfsym} and {P:ext_exam} consistent with volume overload. ",
            rng,
            ctx,
            dict(POOLS, hfsym=("orthopnea", "dyspnea on exertion", "paroxysmal nocturnal dyspnea")),
        )
        sec.add(f"{he} was diuresed with ").ent("IV furosemide", "TREATMENT")
        sec.add(
            f" with a net negative fluid balance of {rng.randint(2, 9)} liters. {he} was transitioned to oral "
        )
        sec.ent(_note_drug(plan, ("furosemide", "torsemide"), "torsemide"), "TREATMENT")
        sec.add(" prior to discharge. Discharge weight was " if discharge else " today. Weight today is ")
        sec.add(f"{rng.randint(58, 121)} kg.")
    elif label == "DIABETES":
        sec.add("Home ").ent(_note_drug(plan, DM_DRUGS, "metformin"), "TREATMENT")
        sec.add(f" was held while inpatient and {his} sugars were managed with ")
        sec.ent("an insulin sliding scale", "TREATMENT")
        sec.add(f". Blood sugars ranged from {rng.randint(110, 150)} to {rng.randint(190, 320)}. ")
        sec.add(rng.choice(("Diabetes education was provided. ", "Home regimen was resumed at discharge. ")))
    elif label == "CKD":
        sec.ent("Creatinine", "TEST").add(f" remained near {his} baseline of {rng.uniform(1.6, 3.0):.1f}. ")
        sec.add("Medications were renally dosed and nephrotoxins were avoided. ")
        sec.add(f"{he} will follow up with nephrology as an outpatient.")
    elif label == "PNEUMONIA":
        sec.add(f"{he} presented with ").ent("fever", "PROBLEM").add(" and ").ent(
            "productive cough", "PROBLEM"
        )
        sec.add(". ").ent("Blood cultures", "TEST").add(" showed no growth. ")
        sec.add(f"{he} was treated with ").ent(rng.choice(V.PNEUMONIA_ANTIBIOTICS), "TREATMENT", mark="abx")
        sec.add(" and transitioned to oral ").ent(_note_drug(plan, ABX_DRUGS, "cefpodoxime"), "TREATMENT")
        sec.add(f" to complete a {rng.choice((5, 7))}-day course.")
    elif label == "AFIB":
        sec.add(f"{he} had episodes of ").ent("palpitations", "PROBLEM")
        sec.add(f" with heart rates up to {rng.randint(115, 160)} on ").ent("telemetry", "TEST")
        sec.add(". Rate was controlled with ").ent(
            _note_drug(plan, ("metoprolol succinate", "diltiazem"), "metoprolol tartrate"), "TREATMENT"
        )
        sec.add(f". {his[:1].upper() + his[1:]} CHA2DS2-VASc score is {rng.randint(2, 6)}.")
    sec.add("\n")


def other_problem_paragraph(
    sec: SectionBuilder,
    rng: random.Random,
    plan: Plan,
    problem: Optional[Tuple[str, Tuple[str, ...], Tuple[str, ...]]] = None,
) -> None:
    """Write a paragraph for a problem that is not a note-level label.

    Without `problem`, takes the next comorbidity, then an acute problem, not yet written.
    """
    if problem is None:
        pending = [d for d in plan["comorbid"] + plan["acute"] if d[0] not in plan["used_dx"]]
        spare = [d for d in V.ACUTE_DX if d[0] not in plan["used_dx"]]
        problem = pending[0] if pending else rng.choice(spare)
    name, tests, txs = problem
    plan["used_dx"].append(name)
    ctx = dict(plan["ctx"], dx_tests=tests, dx_txs=txs)
    sec.add("# ").ent(_cap(name), "PROBLEM").add(": ")
    chronic = any(name == d[0] for d in V.CHRONIC_DX)
    lines = [rng.choice(T.OTHER_PROBLEM_TX if chronic else T.ACUTE_PROBLEM_TX)]
    if tests:
        lines.append(rng.choice(T.OTHER_PROBLEM_TEST))
    lines += rng.sample(T.OTHER_PROBLEM_LINES, rng.randint(0, 2))
    for line in lines:
        sec.fill(line, rng, ctx, POOLS).add(" ")
    sec.add("\n")


def day_paragraph(sec: SectionBuilder, rng: random.Random, plan: Plan) -> None:
    """Write a day-by-day paragraph; days count up so long stays read naturally."""
    plan["day"] += rng.randint(1, 2)
    sec.add(f"Hospital day {plan['day']}: ")
    for line in rng.sample(T.COURSE_FILLERS, rng.randint(3, 6)):
        ev_sym, ev_test, ev_tx = rng.choice(T.EVENTS)
        ctx = dict(plan["ctx"], d=str(plan["day"]), ev_sym=ev_sym, ev_test=ev_test, ev_tx=ev_tx)
        sec.fill(line, rng, ctx, POOLS).add(" ")
    sec.add("\n")


def expand_results(sec: SectionBuilder, rng: random.Random, plan: Plan) -> bool:
    """Add a follow-up lab panel (no QA keys) to RESULTS.

    RETURNS (bool): False once the section holds eight panels.
    """
    if plan["lab_day"] > 12:
        return False
    plan["lab_day"] += rng.randint(1, 2)
    write_labs(sec, rng, plan, f"Labs on hospital day {plan['lab_day']}", False)
    return True


def expand_course(sec: SectionBuilder, rng: random.Random, plan: Plan) -> bool:
    """Add one filler paragraph to HOSPITAL COURSE or ASSESSMENT AND PLAN.

    RETURNS (bool): True (this section can always grow).
    """
    left = any(d[0] not in plan["used_dx"] for d in V.ACUTE_DX + tuple(plan["comorbid"]))
    if plan["note_type"] == "discharge_summary" and (rng.random() < 0.55 or not left):
        day_paragraph(sec, rng, plan)
    elif left:
        other_problem_paragraph(sec, rng, plan)
    else:
        day_paragraph(sec, rng, plan)
    return True


def _course_body(sec: SectionBuilder, rng: random.Random, plan: Plan) -> None:
    primary = plan["primary"]
    labels: List[str] = [
        lab for lab in V.CONDITION_LABELS if "course" in plan["place"][lab] and lab != primary
    ]
    rng.shuffle(labels)
    # The reason for admission comes first, as in a real problem-based course.
    if primary in V.CONDITION_TERMS:
        labels.insert(0, primary)
    else:
        other_problem_paragraph(sec, rng, plan, next(d for d in V.ACUTE_DX if d[0] == primary))
    for label in labels:
        condition_paragraph(sec, rng, plan, label)
    for label in distractors(plan, "neg"):
        if plan["neg_at"][label] == "course":
            cond_sentence(sec, rng, plan, label, T.NEG_COND)
            sec.add("\n")


def hospital_course(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): HOSPITAL COURSE, problem based."""
    sec = new_section(rng, "HOSPITAL_COURSE")
    ctx = plan["ctx"]
    sec.add(f"{ctx['Pt']} is a {ctx['age']}-year-old {ctx['man']} admitted with ")
    sec.ent(plan["cc_pool"][0], "PROBLEM").add(". Hospital course by problem:\n")
    _course_body(sec, rng, plan)
    return sec


def assessment_and_plan(rng: random.Random, plan: Plan) -> SectionBuilder:
    """RETURNS (SectionBuilder): ASSESSMENT AND PLAN of a progress note."""
    sec = new_section(rng, "ASSESSMENT_AND_PLAN")
    ctx = plan["ctx"]
    sec.add(f"{ctx['age']}-year-old {ctx['man']} with ")
    write_entity_list(sec, history_terms(rng, plan, "dx", current=True), "PROBLEM")
    sec.add(", seen for ").ent(plan["cc_pool"][0], "PROBLEM").add(".\n")
    _course_body(sec, rng, plan)
    return sec


def close_assessment(sec: SectionBuilder, rng: random.Random, plan: Plan) -> None:
    """Finish an A&P with return precautions (hypothetical mentions) and follow-up."""
    ctx = plan["ctx"]
    if not plan["brief"]:
        sec.fill(rng.choice(T.PRECAUTION_LINES), rng, ctx, POOLS).add(" ")
    for label in distractors(plan, "hyp"):
        cond_sentence(sec, rng, plan, label, T.HYP_COND)
    sec.add("\n")
    for specialty in plan["followups"]:
        when = rng.choice(("in 2 weeks", "in 1 month", "in 3 months"))
        sec.add(f"Follow up with {specialty} ").mark(f"followup:{specialty}", when).add(".\n")
