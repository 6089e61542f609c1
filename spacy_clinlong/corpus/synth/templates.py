"""Sentence templates, section headers and plain word pools for the synthetic notes.

Template syntax is described in `builder`. Entity pools are the
tuples in `vocab`; `POOLS` maps the names used in templates to them.
"""

from typing import Dict, Sequence, Tuple

from . import vocab as V

# Canonical section name -> header variants as printed (uppercase, no colon).
HEADERS: Dict[str, Tuple[str, ...]] = {
    "CHIEF_COMPLAINT": ("CHIEF COMPLAINT", "REASON FOR ADMISSION"),
    "HISTORY_OF_PRESENT_ILLNESS": ("HISTORY OF PRESENT ILLNESS", "HPI"),
    "SUBJECTIVE": ("SUBJECTIVE", "INTERVAL HISTORY"),
    "PAST_MEDICAL_HISTORY": ("PAST MEDICAL HISTORY", "PMH"),
    "PAST_SURGICAL_HISTORY": ("PAST SURGICAL HISTORY", "SURGICAL HISTORY"),
    "MEDICATIONS": (
        "MEDICATIONS ON ADMISSION",
        "HOME MEDICATIONS",
        "MEDICATIONS PRIOR TO ADMISSION",
        "MEDICATIONS",
        "OUTPATIENT MEDICATIONS",
    ),
    "ALLERGIES": (
        "ALLERGIES",
        "ALLERGIES AND ADVERSE REACTIONS",
        "ALLERGIES AND INTOLERANCES",
        "DRUG ALLERGIES",
    ),
    "SOCIAL_HISTORY": ("SOCIAL HISTORY",),
    "FAMILY_HISTORY": ("FAMILY HISTORY",),
    "REVIEW_OF_SYSTEMS": ("REVIEW OF SYSTEMS",),
    "PHYSICAL_EXAM": ("PHYSICAL EXAMINATION", "PHYSICAL EXAM", "OBJECTIVE"),
    "RESULTS": ("PERTINENT RESULTS", "LABORATORY AND IMAGING DATA", "LABS AND IMAGING"),
    "HOSPITAL_COURSE": ("HOSPITAL COURSE", "BRIEF HOSPITAL COURSE"),
    "ASSESSMENT_AND_PLAN": ("ASSESSMENT AND PLAN", "IMPRESSION AND PLAN"),
    "DISCHARGE_DIAGNOSES": ("DISCHARGE DIAGNOSES", "DISCHARGE DIAGNOSIS"),
    "DISCHARGE_MEDICATIONS": ("DISCHARGE MEDICATIONS",),
    "MEDICATIONS_AT_END_OF_VISIT": ("MEDICATIONS AT END OF VISIT", "CURRENT MEDICATIONS AT END OF VISIT"),
    "DISCHARGE_INSTRUCTIONS": ("DISCHARGE INSTRUCTIONS", "PATIENT INSTRUCTIONS"),
    "FOLLOW_UP": ("FOLLOW-UP", "FOLLOW-UP APPOINTMENTS"),
}
# Sections whose drugs decide ALLERGY_CONFLICT (the last medication list of a note).
FINAL_MED_SECTIONS: Tuple[str, ...] = ("DISCHARGE_MEDICATIONS", "MEDICATIONS_AT_END_OF_VISIT")

# Shared by MEDICATIONS and ALLERGIES on purpose: only the section header
# tells a home medication from an allergen, so the label needs long context.
SHARED_LIST_ITEMS: Tuple[str, ...] = (
    "{n} {DRUG}, per patient report.",
    "{n} {DRUG}, per pharmacy records.",
    "{n} {DRUG}, noted on admission by the primary team.",
    "{n} {DRUG}, confirmed with the patient at the bedside.",
    "{n} {DRUG} (per outside hospital records, reconciled by pharmacy).",
    "{n} {DRUG} - listed in the prior discharge summary from {year}.",
    "{n} {DRUG}, reported by the patient's {relative}; details could not be independently verified.",
    "{n} {DRUG}, documented in the outpatient record and reviewed with the patient today.",
    "{n} {DRUG}; source: {pharmacy}, last updated {month} {year}.",
    "{n} {DRUG}, entered by the admitting resident and verified by pharmacy on hospital day {d}.",
    "{n} {DRUG}, as listed on the medication reconciliation form, no changes documented since {year}.",
    "{n} {DRUG}. Information obtained from {pharmacy} and the primary care note dated {month} {year}.",
    "{n} {DRUG}, unchanged from the last clinic visit according to the patient and {his} {relative}.",
    "{n} {DRUG} (patient-reported, to be confirmed with the primary care office).",
)
SHARED_LIST_INTROS: Tuple[str, ...] = (
    "",
    "",
    "Reviewed with the patient and updated in the chart:\n",
    "Per the medication reconciliation completed on admission:\n",
    "The following list was obtained from the patient, family and pharmacy records:\n",
    "Verified with the patient and {his} {relative}:\n",
)
NKDA: Tuple[str, ...] = (
    "No known drug allergies.",
    "NKDA.",
    "No known allergies.",
    "The patient reports no known drug allergies.",
)

HPI_FILLERS: Tuple[str, ...] = (
    "{He} reports {P:symptom} that started {when} and has been getting progressively worse.",
    "{He} denies {P:symptom|neg}, {P:symptom|neg}, or {P:symptom|neg}.",
    "{He} also endorses {P:symptom} and {P:symptom} over the past {dur}.",
    "Of note, {he} was seen in clinic {past} and was started on {X:$mymeds} at that time.",
    "{He} reports good adherence to {his} medications, although {he} occasionally misses evening doses.",
    "There has been no recent travel, and {he} has had no sick contacts at home.",
    "{He} has not had {P:symptom|neg} or {P:symptom|neg}.",
    "{His} {relative} brought {him} in after noticing that {he} appeared more tired than usual.",
    "{He} was treated {past} for {P:infection|hist} with a short course of {X:oral_abx}.",
    "A {T:test} obtained at an outside facility {past} was reportedly unremarkable.",
    "At baseline, {he} walks with a cane and is independent in activities of daily living.",
    "{He} notes that the {P:symptom} is worse at night and improves somewhat with rest.",
    "Review of outside records shows a prior admission {past} for {P:acute_dx|hist}.",
    "{He} estimates {his} exercise tolerance at about {blocks} blocks, down from {blocks2} blocks a month ago.",
    "No {P:symptom|neg} was reported by the patient or family.",
    "{He} has been trying to follow a low-sodium diet but admits to eating out frequently.",
    "{He} tried over-the-counter remedies at home without significant relief.",
    "{He} called {his} primary care physician {when}, who recommended evaluation in the emergency department.",
    "{He} reports a {weightgain}-pound weight change over the past {dur}.",
    "{He} denies any recent medication changes apart from those noted below.",
    "The history was obtained from the patient and {his} {relative}, and outside records were reviewed.",
    "{He} was recently hospitalized {past} for {P:acute_dx|hist} and was discharged home without services.",
)

# In-hospital events: (symptom, test, treatment), so one line stays coherent.
EVENTS: Tuple[Tuple[str, str, str], ...] = (
    ("fever", "blood cultures", "acetaminophen"),
    ("nausea", "abdominal x-ray", "ondansetron"),
    ("chest pain", "EKG", "sublingual nitroglycerin"),
    ("shortness of breath", "portable chest x-ray", "nebulizer treatments"),
    ("hypoxia", "arterial blood gas", "supplemental oxygen"),
    ("palpitations", "EKG", "IV metoprolol"),
    ("dizziness", "orthostatic vital signs", "IV fluids"),
    ("confusion", "CT head without contrast", "delirium precautions"),
    ("hypotension", "lactate", "a 500 mL normal saline bolus"),
    ("hyperglycemia", "fingerstick glucose checks", "an insulin sliding scale"),
    ("constipation", "abdominal x-ray", "a bowel regimen"),
    ("abdominal pain", "hepatic function panel", "acetaminophen"),
    ("wheezing", "peak flow measurements", "nebulizer treatments"),
    ("diarrhea", "C. difficile testing", "IV fluids"),
    ("headache", "CT head without contrast", "acetaminophen"),
    ("low back pain", "lumbar spine x-ray", "a lidocaine patch"),
    ("insomnia", "sleep log review", "melatonin"),
)
# Day-by-day lines; `ev_sym`, `ev_test`, `ev_tx` come from one EVENTS row.
COURSE_FILLERS: Tuple[str, ...] = (
    "On hospital day {d}, {he} was noted to have {P:$ev_sym}, which resolved with {X:$ev_tx}.",
    "Overnight, {he} had an episode of {P:$ev_sym}; evaluation with {T:$ev_test} was unremarkable.",
    "{He} developed {P:$ev_sym}; after evaluation with {T:$ev_test}, {he} was treated with {X:$ev_tx}.",
    "For {P:$ev_sym}, {he} received {X:$ev_tx} with good effect.",
    "{His} {T:test} was trended daily and remained stable.",
    "{He} was evaluated by {X:therapy}, who recommended discharge home with outpatient services.",
    "{He} remained hemodynamically stable.",
    "Home {X:$mymeds} was held on admission and resumed prior to discharge.",
    "{He} was maintained on {X:maint_tx} for the duration of the hospitalization.",
    "Nutrition was consulted for {P:nutr_sym} and recommended oral supplements with meals.",
    "{He} had no further {P:$ev_sym|neg} after the first 24 hours.",
    "{He} was ambulating in the hallway with assistance.",
    "Social work met with the patient and family to discuss discharge planning and home services.",
    "{His} pain was well controlled with {X:analgesic}.",
    "Case management arranged for home nursing visits after discharge.",
    "The patient was counseled at length about medication adherence and diet.",
    "{He} was seen by the consult team, who agreed with the current plan and signed off.",
    "{His} {T:test} showed no significant change from admission.",
    "Because of {P:gi_sym}, {his} diet was advanced slowly and {he} tolerated it well.",
    "Goals of care were discussed with the patient and {his} {relative}; {he} remains full code.",
    "Vital signs were stable overnight and {he} was afebrile.",
    "{He} declined {X:maint_tx} this morning after a discussion of risks and benefits.",
)

# Plan lines for a non-label problem; ctx holds its tests (`dx_tests`) and
# treatments (`dx_txs`), so a problem is managed with something plausible.
OTHER_PROBLEM_TX: Tuple[str, ...] = (  # chronic problems
    "{He} was continued on {X:$dx_txs}.",
    "{^X:$dx_txs} was continued without changes.",
    "Management included {X:$dx_txs}, which will continue after discharge.",
)
ACUTE_PROBLEM_TX: Tuple[str, ...] = (
    "{He} was treated with {X:$dx_txs} with improvement.",
    "This responded to {X:$dx_txs}.",
    "{He} received {X:$dx_txs}, and this resolved prior to discharge.",
)
OTHER_PROBLEM_TEST: Tuple[str, ...] = (
    "Workup included {T:$dx_tests}, with reassuring results.",
    "Plan to repeat {T:$dx_tests} at the follow-up visit.",
    "We reviewed {his} {T:$dx_tests}, without significant change from prior.",
)
OTHER_PROBLEM_LINES: Tuple[str, ...] = (
    "This was monitored without further intervention.",
    "This was felt to be chronic and stable during the admission.",
    "Outpatient follow-up with {specialty} was arranged.",
    "No changes were made to {his} regimen.",
    "{He} had no {P:symptom|neg} related to this during the stay.",
    "The etiology was felt to be multifactorial.",
    "This was discussed with the patient, who agreed with the plan.",
)

# One line per organ system; each system is written or skipped as a whole.
ROS_LINES: Tuple[str, ...] = (
    "Constitutional: Negative for {P:sym_const|neg} and {P:sym_const|neg}.",
    "Cardiovascular: Denies {P:sym_cv|neg} or {P:sym_cv|neg}.",
    "Respiratory: Positive for {P:sym_resp}. Negative for {P:sym_resp|neg}.",
    "Gastrointestinal: No {P:sym_gi|neg} or {P:sym_gi|neg}.",
    "Genitourinary: Negative for {P:sym_gu|neg}.",
    "Neurological: Denies {P:sym_neuro|neg} or {P:sym_neuro|neg}.",
    "Musculoskeletal: Positive for {P:sym_msk}.",
    "Skin: No {P:sym_skin|neg}.",
)
ROS_CLOSING = "All other systems reviewed and negative except as noted in the HPI."

# Alternatives per organ system (positive and negative findings).
EXAM_LINES: Tuple[Tuple[str, ...], ...] = (
    (
        "General: {Elderly} {man} resting in bed, in no acute distress.",
        "General: {Elderly} {man} sitting up in a chair, speaking in full sentences.",
    ),
    (
        "HEENT: Normocephalic, atraumatic. Moist mucous membranes.",
        "HEENT: Anicteric sclerae. Oropharynx clear.",
    ),
    ("Neck: Supple. No {P:neck_exam|neg}.", "Neck: {^P:neck_exam} noted."),
    (
        "Lungs: Notable for {P:lung_exam}. No {P:lung_exam|neg}.",
        "Lungs: Clear to auscultation bilaterally. No {P:lung_exam|neg} or {P:lung_exam|neg}.",
    ),
    (
        "Cardiovascular: Regular rate and rhythm. No {P:heart_exam_neg|neg}.",
        "Cardiovascular: Tachycardic, with {P:heart_exam}.",
    ),
    (
        "Abdomen: Soft, nondistended, with normal bowel sounds. No {P:abd_exam|neg}.",
        "Abdomen: Obese, with {P:abd_exam}.",
    ),
    (
        "Extremities: {^P:ext_exam}, otherwise warm and well perfused.",
        "Extremities: No {P:ext_exam_neg|neg}.",
    ),
    (
        "Neurologic: Alert and oriented to person, place and time. Moves all extremities.",
        "Neurologic: Alert, oriented to person and place only. No focal deficits.",
    ),
    ("Skin: Warm and dry, no lesions noted.", "Skin: Intact, without rashes."),
    ("Psychiatric: Calm and appropriate, with normal mood and affect.",),
)

# Alternatives per topic, so one note never says both "never smoker" and "former smoker".
SOCIAL_LINES: Tuple[Tuple[str, ...], ...] = (
    (
        "Lives with {his} {partner} in a single-family home.",
        "Lives alone in an apartment.",
        "Lives in an assisted living facility.",
    ),
    (
        "Former smoker with a {packs} pack-year history, quit in {year}.",
        "Never smoker.",
        "Current smoker, about half a pack per day.",
    ),
    ("Drinks alcohol socially, about {drinks} drinks per week.", "Denies alcohol use."),
    ("Denies illicit drug use.",),
    ("Retired {job}.", "Works part-time as a {job}."),
    (
        "Independent in activities of daily living and drives.",
        "Uses a walker outside the home since a fall in {year}.",
    ),
)

PRECAUTION_LINES: Tuple[str, ...] = (
    "Reviewed return precautions with the patient, including new {P:symptom|hyp} or {P:symptom|hyp}.",
    "{He} will notify the team if {he} develops {P:symptom|hyp} or {P:symptom|hyp}.",
    "Should {he} develop {P:symptom|hyp}, {he} will be re-evaluated at the bedside.",
)
INSTRUCTION_LINES: Tuple[str, ...] = (
    "Please return to the emergency department if you develop {P:symptom|hyp}, {P:symptom|hyp}, or {P:symptom|hyp}.",
    "Call your doctor if you notice {P:symptom|hyp} or {P:symptom|hyp}.",
    "Weigh yourself every morning and call your doctor if your weight goes up by more than 3 pounds in a day.",
    "Take all medications as prescribed and bring this list to every appointment.",
    "Limit salt in your diet to less than 2 grams per day.",
    "You may resume your normal activities as tolerated.",
    "If you experience {P:symptom|hyp}, stop the new medication and call the clinic.",
    "Do not drive until cleared by your physician.",
    "Seek care right away for {P:symptom|hyp} lasting more than a few minutes.",
)

# Condition mentions that must not set the note label (see sections).
NEG_COND: Tuple[str, ...] = (
    "There was no evidence of {P:cond|neg} during this admission.",
    "{He} has no history of {P:cond|neg}.",
    "Workup was negative for {P:cond|neg}.",
    "No {P:cond|neg} was identified on review of prior records.",
    "{P:cond|neg} was ruled out.",
)
FAM_COND: Tuple[str, ...] = (
    "{His} {relative} had {P:cond|fam}.",
    "Family history is notable for {P:cond|fam} in {his} {relative}.",
    "{^relative} with {P:cond|fam}, diagnosed at age {rel_age}.",
)
HYP_COND_YOU: Tuple[str, ...] = (
    "If you develop {P:cond|hyp}, your medications may need to be adjusted.",
    "We discussed your risk of developing {P:cond|hyp} in the future.",
    "Call your doctor if you notice signs of {P:cond|hyp}.",
)
HYP_COND: Tuple[str, ...] = (
    "{He} was counseled on the risk of developing {P:cond|hyp}.",
    "If {he} develops {P:cond|hyp}, {he} should be re-evaluated promptly.",
    "Return precautions were reviewed, including what to do should {P:cond|hyp} develop.",
)

PLAIN_POOLS: Dict[str, Sequence[str]] = {
    "when": (
        "yesterday",
        "this morning",
        "two days ago",
        "last night",
        "earlier this week",
        "three days ago",
    ),
    "past": ("last month", "two weeks ago", "in the spring", "several months ago", "last year", "in January"),
    "dur": ("two days", "three days", "one week", "several days", "two weeks", "48 hours", "a month"),
    "d": ("2", "3", "4", "5", "6"),
    "year": tuple(str(y) for y in range(2006, 2022)),
    "month": ("January", "March", "April", "June", "August", "October", "November"),
    "blocks": ("1", "2", "3"),
    "blocks2": ("5", "6", "10"),
    "weightgain": ("5", "7", "10", "12"),
    "partner": ("wife", "husband", "partner", "daughter", "son"),
    "packs": ("10", "20", "30", "40"),
    "drinks": ("two", "three", "four"),
    "job": ("teacher", "electrician", "nurse", "accountant", "truck driver", "machinist", "librarian"),
    "relative": V.RELATIVES,
    "specialty": V.SPECIALTIES,
    "pharmacy": V.PHARMACIES,
    "rel_age": ("48", "55", "61", "67", "72"),
    "Elderly": ("Pleasant", "Well-appearing", "Tired-appearing"),
}

POOLS: Dict[str, Sequence[str]] = dict(PLAIN_POOLS)
POOLS.update(
    {
        "symptom": V.SYMPTOMS,
        "acute_dx": tuple(d[0] for d in V.ACUTE_DX[:12]),
        "fdx": V.FAMILY_DX,
        "test": V.OTHER_TESTS,
        "itx": V.INPATIENT_TREATMENTS,
        "lung_exam": (
            "bibasilar crackles",
            "expiratory wheezes",
            "decreased breath sounds at the right base",
            "egophony",
            "rhonchi",
        ),
        "heart_exam": ("a systolic murmur", "an S3 gallop", "a pericardial rub", "a diastolic murmur"),
        "ext_exam_neg": ("lower extremity edema", "calf tenderness", "cyanosis", "clubbing"),
        "heart_exam_neg": ("murmurs", "rubs", "gallops", "S3 gallop"),
        "sym_const": ("fever", "chills", "night sweats", "weight loss", "fatigue", "poor appetite"),
        "sym_cv": ("chest pain", "palpitations", "orthopnea", "lower extremity edema", "syncope"),
        "sym_resp": ("cough", "shortness of breath", "wheezing", "hemoptysis", "sputum production"),
        "sym_gi": (
            "nausea",
            "vomiting",
            "diarrhea",
            "constipation",
            "abdominal pain",
            "melena",
            "hematochezia",
        ),
        "sym_gu": ("dysuria", "urinary frequency", "hematuria"),
        "sym_neuro": ("headache", "dizziness", "focal weakness", "numbness", "confusion"),
        "sym_msk": ("joint pain", "low back pain", "myalgias"),
        "sym_skin": ("rash", "pruritus"),
        "infection": ("a urinary tract infection", "cellulitis", "acute sinusitis", "acute bronchitis"),
        "oral_abx": ("cephalexin", "nitrofurantoin", "doxycycline", "amoxicillin"),
        "neck_exam": ("jugular venous distension", "cervical lymphadenopathy", "thyromegaly"),
        "abd_exam": (
            "tenderness in the right upper quadrant",
            "rebound tenderness",
            "hepatomegaly",
            "ascites",
        ),
        "ext_exam": (
            "pitting edema to the mid shin",
            "trace bilateral ankle edema",
            "calf tenderness",
            "cyanosis",
        ),
        "surgery": V.SURGERIES,
        "therapy": ("physical therapy", "occupational therapy", "speech therapy"),
        "maint_tx": (
            "enoxaparin for DVT prophylaxis",
            "heparin subcutaneously",
            "incentive spirometry",
            "a bowel regimen",
            "supplemental oxygen",
            "an insulin sliding scale",
        ),
        "analgesic": ("acetaminophen", "oxycodone as needed", "a lidocaine patch", "scheduled acetaminophen"),
        "nutr_sym": ("poor appetite", "weight loss", "early satiety"),
        "gi_sym": ("nausea", "vomiting", "abdominal pain"),
    }
)
