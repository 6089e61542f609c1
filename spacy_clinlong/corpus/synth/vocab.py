"""Word lists for the synthetic note generator: entity surface forms and drugs.

Everything here is an ordered tuple so that `random.Random.choice` draws the
same items on every run and machine (no set or dict-hash ordering involved).
Condition terms (`CONDITION_TERMS`) never appear in the other PROBLEM pools,
so a note-level label can be recomputed from the entities alone.
"""

from typing import Dict, Tuple

# Note-level labels (textcat_multilabel). ALLERGY_CONFLICT is computed from
# the ALLERGIES and final medication sections, the others from mentions.
CONDITION_LABELS: Tuple[str, ...] = ("DIABETES", "HEART_FAILURE", "CKD", "PNEUMONIA", "AFIB")
CAT_LABELS: Tuple[str, ...] = CONDITION_LABELS + ("ALLERGY_CONFLICT",)
ENTITY_LABELS: Tuple[str, ...] = ("PROBLEM", "TEST", "TREATMENT", "ALLERGEN")

# Surface forms per condition, grouped by subtype. A note picks one subtype
# per present condition and uses only its terms for affirmed mentions, so a
# note never mixes type 1 with type 2 diabetes or a left with a right pneumonia.
CONDITION_SUBTYPES: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    "DIABETES": (
        (
            "type 2 diabetes mellitus",
            "T2DM",
            "diabetes mellitus type 2",
            "non-insulin-dependent diabetes mellitus",
            "poorly controlled type 2 diabetes",
            "diabetes mellitus",
            "diabetes",
        ),
        ("type 1 diabetes mellitus", "insulin-dependent diabetes", "diabetes mellitus", "diabetes"),
    ),
    "HEART_FAILURE": (
        (
            "heart failure with reduced ejection fraction",
            "HFrEF",
            "systolic heart failure",
            "acute on chronic systolic heart failure",
            "congestive heart failure",
            "CHF",
            "heart failure",
        ),
        (
            "heart failure with preserved ejection fraction",
            "HFpEF",
            "diastolic heart failure",
            "acute decompensated heart failure",
            "congestive heart failure",
            "CHF",
            "heart failure",
        ),
    ),
    "CKD": (
        (
            "chronic kidney disease stage 3",
            "stage 3a chronic kidney disease",
            "chronic kidney disease",
            "CKD",
        ),
        ("CKD stage 3b", "chronic kidney disease", "CKD"),
        ("chronic kidney disease stage 4", "chronic kidney disease", "CKD"),
    ),
    "PNEUMONIA": (
        ("right lower lobe pneumonia", "community-acquired pneumonia", "pneumonia"),
        ("left lower lobe pneumonia", "community-acquired pneumonia", "pneumonia"),
        ("aspiration pneumonia", "right lower lobe pneumonia", "pneumonia"),
        ("multifocal pneumonia", "community-acquired pneumonia", "pneumonia"),
    ),
    "AFIB": (
        ("paroxysmal atrial fibrillation", "atrial fibrillation", "AFib"),
        (
            "persistent atrial fibrillation",
            "atrial fibrillation",
            "AFib",
            "atrial fibrillation with rapid ventricular response",
        ),
        ("permanent atrial fibrillation", "atrial fibrillation", "AFib"),
    ),
}
# Chest x-ray finding per PNEUMONIA subtype (same order as above).
PNEUMONIA_FINDINGS: Tuple[str, ...] = (
    "right lower lobe consolidation",
    "left lower lobe consolidation",
    "right lower lobe consolidation",
    "bilateral multifocal opacities",
)
# Every term of a label, in a fixed order (dict.fromkeys keeps first occurrences).
CONDITION_TERMS: Dict[str, Tuple[str, ...]] = {
    label: tuple(dict.fromkeys(term for sub in subs for term in sub))
    for label, subs in CONDITION_SUBTYPES.items()
}

SYMPTOMS: Tuple[str, ...] = (
    "chest pain",
    "shortness of breath",
    "dyspnea on exertion",
    "palpitations",
    "fever",
    "chills",
    "night sweats",
    "cough",
    "productive cough",
    "hemoptysis",
    "nausea",
    "vomiting",
    "diarrhea",
    "constipation",
    "abdominal pain",
    "melena",
    "hematochezia",
    "dysuria",
    "urinary frequency",
    "headache",
    "dizziness",
    "lightheadedness",
    "syncope",
    "lower extremity edema",
    "orthopnea",
    "paroxysmal nocturnal dyspnea",
    "fatigue",
    "generalized weakness",
    "weight loss",
    "poor appetite",
    "low back pain",
    "joint pain",
    "rash",
    "pruritus",
    "blurry vision",
    "confusion",
    "wheezing",
    "leg swelling",
    "sore throat",
    "myalgias",
    "focal weakness",
    "numbness",
    "tingling in the feet",
    "pleuritic chest pain",
    "early satiety",
    "sputum production",
    "polyuria",
    "polydipsia",
)

# Diagnoses that are never note-level labels: (name, tests, treatments).
# Treatments that are drug names of `DRUGS` (lowercased) also steer the
# home medication list, so lists and problems agree.
CHRONIC_DX: Tuple[Tuple[str, Tuple[str, ...], Tuple[str, ...]], ...] = (
    (
        "hypertension",
        ("basic metabolic panel",),
        ("lisinopril", "amlodipine", "losartan", "hydrochlorothiazide"),
    ),
    ("hyperlipidemia", ("lipid panel",), ("atorvastatin", "rosuvastatin")),
    ("coronary artery disease", ("EKG", "troponin"), ("aspirin", "clopidogrel", "atorvastatin")),
    ("gastroesophageal reflux disease", (), ("omeprazole", "pantoprazole", "famotidine")),
    ("hypothyroidism", ("TSH",), ("levothyroxine",)),
    ("obstructive sleep apnea", (), ("CPAP at night",)),
    ("osteoarthritis of the knees", ("knee x-ray",), ("acetaminophen", "physical therapy")),
    ("gout", (), ("allopurinol",)),
    ("benign prostatic hyperplasia", ("post-void residual",), ("tamsulosin",)),
    ("major depressive disorder", ("PHQ-9 screening",), ("sertraline", "escitalopram", "duloxetine")),
    ("generalized anxiety disorder", (), ("sertraline", "escitalopram")),
    ("asthma", ("peak flow measurements",), ("albuterol inhaler", "montelukast")),
    (
        "chronic obstructive pulmonary disease",
        ("pulmonary function tests", "arterial blood gas"),
        ("tiotropium", "albuterol inhaler", "prednisone"),
    ),
    ("iron deficiency anemia", ("iron studies", "complete blood count"), ("ferrous sulfate",)),
    ("peripheral neuropathy", ("vitamin B12 level",), ("gabapentin", "duloxetine")),
    ("peripheral arterial disease", ("ankle-brachial index",), ("aspirin", "atorvastatin")),
    ("prior ischemic stroke", ("CT head without contrast",), ("aspirin", "clopidogrel", "atorvastatin")),
    ("migraine", (), ("acetaminophen",)),
    ("osteoporosis", ("DEXA scan",), ("cholecalciferol",)),
    ("obesity", (), ("dietary counseling",)),
    ("tobacco use disorder", (), ("a nicotine patch", "smoking cessation counseling")),
    ("chronic low back pain", (), ("acetaminophen", "physical therapy", "gabapentin")),
    ("insomnia", (), ("trazodone", "melatonin")),
    ("vitamin D deficiency", ("vitamin D level",), ("cholecalciferol",)),
    ("mild cognitive impairment", (), ("delirium precautions",)),
)
ACUTE_DX: Tuple[Tuple[str, Tuple[str, ...], Tuple[str, ...]], ...] = (
    (
        "hypokalemia",
        ("basic metabolic panel", "magnesium level"),
        ("potassium chloride", "IV potassium repletion"),
    ),
    ("hyponatremia", ("serum osmolality", "urine sodium"), ("fluid restriction", "normal saline")),
    ("hyperkalemia", ("EKG", "repeat potassium"), ("insulin and dextrose", "calcium gluconate")),
    (
        "urinary tract infection",
        ("urinalysis", "urine culture"),
        ("IV ceftriaxone", "cephalexin", "nitrofurantoin"),
    ),
    ("cellulitis of the left leg", ("blood cultures",), ("IV vancomycin", "cephalexin")),
    ("acute kidney injury", ("renal ultrasound", "urine electrolytes"), ("IV fluids", "lactated Ringer's")),
    ("constipation", (), ("a bowel regimen", "senna", "docusate")),
    ("hospital delirium", ("CT head without contrast",), ("delirium precautions", "melatonin")),
    (
        "acute blood loss anemia",
        ("complete blood count", "type and screen"),
        ("one unit of packed red blood cells",),
    ),
    ("hypomagnesemia", ("magnesium level",), ("IV magnesium sulfate",)),
    ("hyperglycemia", ("fingerstick glucose checks",), ("an insulin sliding scale",)),
    ("deconditioning", (), ("physical therapy", "occupational therapy")),
    ("elevated troponin", ("troponin", "EKG"), ("aspirin",)),
    ("thrombocytopenia", ("platelet count", "peripheral smear"), ("holding heparin",)),
    ("pressure injury of the sacrum", (), ("wound care", "frequent repositioning")),
    ("oral thrush", (), ("nystatin swish and swallow",)),
    ("pain control", (), ("acetaminophen", "oxycodone")),
    ("diarrhea", ("C. difficile testing", "stool studies"), ("IV fluids", "loperamide")),
)

FAMILY_DX: Tuple[str, ...] = (
    "breast cancer",
    "colon cancer",
    "prostate cancer",
    "coronary artery disease",
    "myocardial infarction",
    "stroke",
    "hypertension",
    "lung cancer",
    "ovarian cancer",
    "dementia",
    "Parkinson disease",
    "sudden cardiac death",
    "lupus",
    "rheumatoid arthritis",
    "alcohol use disorder",
)

RELATIVES: Tuple[str, ...] = (
    "mother",
    "father",
    "brother",
    "sister",
    "maternal grandmother",
    "paternal grandfather",
    "maternal aunt",
    "paternal uncle",
    "older brother",
    "younger sister",
)

# (test name, plain-result phrase used when nothing is wrong)
IMAGING: Tuple[Tuple[str, str], ...] = (
    ("chest x-ray", "no acute cardiopulmonary process"),
    ("CT of the chest", "no pulmonary embolism"),
    ("CT of the abdomen and pelvis", "no acute intra-abdominal process"),
    ("CT head without contrast", "no acute intracranial hemorrhage"),
    ("renal ultrasound", "no hydronephrosis"),
    ("lower extremity venous duplex", "no deep vein thrombosis"),
    ("abdominal ultrasound", "no gallstones"),
    ("MRI of the brain", "no acute infarct"),
)
# For impossible questions: tests that are never mentioned in notes.
NEVER_DONE_TESTS: Tuple[str, ...] = (
    "bone marrow biopsy",
    "PET scan",
    "lumbar puncture",
    "EEG",
    "skin biopsy",
    "cardiac MRI",
    "sleep study",
    "bronchoscopy",
)

# (lab name, unit, low, high, decimals) - values drawn uniformly and printed with `decimals`.
LABS: Tuple[Tuple[str, str, float, float, int], ...] = (
    ("sodium", "mmol/L", 128, 145, 0),
    ("potassium", "mmol/L", 3.1, 5.6, 1),
    ("creatinine", "mg/dL", 0.7, 3.4, 1),
    ("BUN", "mg/dL", 8, 62, 0),
    ("hemoglobin", "g/dL", 7.8, 15.2, 1),
    ("white blood cell count", "K/uL", 4.1, 18.5, 1),
    ("platelet count", "K/uL", 95, 410, 0),
    ("glucose", "mg/dL", 72, 340, 0),
    ("BNP", "pg/mL", 40, 2400, 0),
    ("troponin", "ng/mL", 0.01, 0.09, 2),
    ("lactate", "mmol/L", 0.8, 3.9, 1),
    ("INR", "", 0.9, 2.9, 1),
    ("magnesium", "mg/dL", 1.5, 2.4, 1),
    ("procalcitonin", "ng/mL", 0.05, 4.5, 2),
    ("TSH", "mIU/L", 0.5, 6.5, 2),
)
NEVER_DONE_LABS: Tuple[str, ...] = ("lipase", "ferritin", "haptoglobin", "ammonia", "cortisol", "uric acid")

# Singular test names, so "A {T:test} was ..." always reads well.
OTHER_TESTS: Tuple[str, ...] = (
    "electrocardiogram",
    "EKG",
    "urinalysis",
    "urine culture",
    "sputum culture",
    "basic metabolic panel",
    "complete blood count",
    "lipid panel",
    "arterial blood gas",
    "stress test",
    "hepatic function panel",
    "portable chest x-ray",
    "venous blood gas",
    "urine drug screen",
    "procalcitonin level",
    "troponin level",
    "CBC",
    "BMP",
)

# (name, doses, sigs, group). Groups tie drugs to conditions for realism.
DRUGS: Tuple[Tuple[str, Tuple[str, ...], Tuple[str, ...], str], ...] = (
    ("Lisinopril", ("5 mg", "10 mg", "20 mg", "40 mg"), ("by mouth daily",), "htn"),
    ("Losartan", ("25 mg", "50 mg", "100 mg"), ("by mouth daily",), "htn"),
    ("Amlodipine", ("2.5 mg", "5 mg", "10 mg"), ("by mouth daily",), "htn"),
    ("Hydrochlorothiazide", ("12.5 mg", "25 mg"), ("by mouth daily",), "htn"),
    ("Hydralazine", ("25 mg", "50 mg"), ("by mouth three times daily",), "htn"),
    ("Metformin", ("500 mg", "850 mg", "1000 mg"), ("by mouth twice daily with meals",), "dm"),
    (
        "Insulin glargine",
        ("10 units", "18 units", "24 units", "32 units"),
        ("subcutaneously at bedtime",),
        "dm",
    ),
    ("Empagliflozin", ("10 mg", "25 mg"), ("by mouth daily",), "dm"),
    ("Glipizide", ("2.5 mg", "5 mg", "10 mg"), ("by mouth daily before breakfast",), "dm"),
    ("Sitagliptin", ("25 mg", "50 mg", "100 mg"), ("by mouth daily",), "dm"),
    ("Furosemide", ("20 mg", "40 mg", "80 mg"), ("by mouth daily", "by mouth twice daily"), "hf"),
    ("Torsemide", ("10 mg", "20 mg", "40 mg"), ("by mouth daily",), "hf"),
    ("Carvedilol", ("3.125 mg", "6.25 mg", "12.5 mg", "25 mg"), ("by mouth twice daily",), "hf"),
    ("Spironolactone", ("12.5 mg", "25 mg"), ("by mouth daily",), "hf"),
    ("Sacubitril-valsartan", ("24-26 mg", "49-51 mg"), ("by mouth twice daily",), "hf"),
    ("Metoprolol succinate", ("25 mg", "50 mg", "100 mg"), ("by mouth daily",), "af"),
    ("Apixaban", ("2.5 mg", "5 mg"), ("by mouth twice daily",), "af"),
    ("Warfarin", ("2 mg", "3 mg", "5 mg"), ("by mouth daily, dose per INR",), "af"),
    ("Diltiazem", ("120 mg", "180 mg", "240 mg"), ("by mouth daily",), "af"),
    ("Amiodarone", ("200 mg",), ("by mouth daily",), "af"),
    ("Calcitriol", ("0.25 mcg",), ("by mouth daily",), "ckd"),
    ("Sevelamer", ("800 mg",), ("by mouth three times daily with meals",), "ckd"),
    ("Sodium bicarbonate", ("650 mg",), ("by mouth twice daily",), "ckd"),
    ("Amoxicillin-clavulanate", ("875-125 mg",), ("by mouth twice daily for 5 days",), "abx"),
    ("Cefpodoxime", ("200 mg",), ("by mouth twice daily for 5 days",), "abx"),
    ("Doxycycline", ("100 mg",), ("by mouth twice daily for 5 days",), "abx"),
    ("Levofloxacin", ("500 mg", "750 mg"), ("by mouth daily for 5 days",), "abx"),
    ("Azithromycin", ("250 mg", "500 mg"), ("by mouth daily for 3 days",), "abx"),
    ("Atorvastatin", ("10 mg", "20 mg", "40 mg", "80 mg"), ("by mouth nightly",), "gen"),
    ("Rosuvastatin", ("5 mg", "10 mg", "20 mg"), ("by mouth nightly",), "gen"),
    ("Aspirin", ("81 mg",), ("by mouth daily",), "gen"),
    ("Clopidogrel", ("75 mg",), ("by mouth daily",), "gen"),
    ("Levothyroxine", ("50 mcg", "75 mcg", "100 mcg"), ("by mouth daily before breakfast",), "gen"),
    ("Omeprazole", ("20 mg", "40 mg"), ("by mouth daily",), "gen"),
    ("Pantoprazole", ("40 mg",), ("by mouth daily",), "gen"),
    ("Gabapentin", ("100 mg", "300 mg"), ("by mouth three times daily",), "gen"),
    ("Sertraline", ("50 mg", "100 mg"), ("by mouth daily",), "gen"),
    ("Escitalopram", ("10 mg", "20 mg"), ("by mouth daily",), "gen"),
    ("Tamsulosin", ("0.4 mg",), ("by mouth nightly",), "gen"),
    ("Allopurinol", ("100 mg", "300 mg"), ("by mouth daily",), "gen"),
    ("Montelukast", ("10 mg",), ("by mouth nightly",), "gen"),
    ("Trazodone", ("25 mg", "50 mg"), ("by mouth at bedtime as needed for sleep",), "gen"),
    ("Acetaminophen", ("500 mg", "650 mg"), ("by mouth every 6 hours as needed for pain",), "gen"),
    ("Oxycodone", ("5 mg",), ("by mouth every 6 hours as needed for severe pain",), "gen"),
    ("Docusate", ("100 mg",), ("by mouth twice daily",), "gen"),
    ("Senna", ("8.6 mg",), ("by mouth nightly as needed for constipation",), "gen"),
    ("Ondansetron", ("4 mg",), ("by mouth every 8 hours as needed for nausea",), "gen"),
    ("Famotidine", ("20 mg",), ("by mouth twice daily",), "gen"),
    ("Ferrous sulfate", ("325 mg",), ("by mouth daily",), "gen"),
    ("Cholecalciferol", ("1000 units", "2000 units"), ("by mouth daily",), "gen"),
    ("Albuterol inhaler", ("2 puffs",), ("inhaled every 4 hours as needed for wheezing",), "gen"),
    ("Tiotropium", ("18 mcg",), ("inhaled daily",), "gen"),
    ("Prednisone", ("5 mg", "10 mg", "20 mg"), ("by mouth daily",), "gen"),
    ("Duloxetine", ("30 mg", "60 mg"), ("by mouth daily",), "gen"),
    ("Melatonin", ("3 mg",), ("by mouth at bedtime",), "gen"),
    ("Potassium chloride", ("20 mEq",), ("by mouth daily",), "gen"),
    ("Ibuprofen", ("400 mg", "600 mg"), ("by mouth every 8 hours as needed",), "gen"),
    ("Naproxen", ("250 mg", "500 mg"), ("by mouth twice daily as needed",), "gen"),
    ("Codeine", ("30 mg",), ("by mouth every 6 hours as needed",), "gen"),
    ("Penicillin VK", ("500 mg",), ("by mouth four times daily",), "gen"),
    ("Sulfamethoxazole-trimethoprim", ("800-160 mg",), ("by mouth twice daily",), "gen"),
    ("Cephalexin", ("500 mg",), ("by mouth four times daily",), "gen"),
    ("Ciprofloxacin", ("250 mg", "500 mg"), ("by mouth twice daily",), "gen"),
    ("Nitrofurantoin", ("100 mg",), ("by mouth twice daily",), "gen"),
    ("Tramadol", ("50 mg",), ("by mouth every 6 hours as needed",), "gen"),
    ("Morphine", ("15 mg",), ("by mouth every 4 hours as needed",), "gen"),
)
DRUG_NAMES: Tuple[str, ...] = tuple(d[0] for d in DRUGS)
# Drugs whose name never appears in any note, for unanswerable dose questions.
ABSENT_DRUGS: Tuple[str, ...] = (
    "Rivaroxaban",
    "Dabigatran",
    "Pioglitazone",
    "Liraglutide",
    "Bisoprolol",
    "Valsartan",
    "Nifedipine",
    "Lamotrigine",
    "Levetiracetam",
    "Finasteride",
    "Bupropion",
    "Mirtazapine",
)
# Allergens that are not on the drug list: a minority, so most allergen
# names are also plausible home medications.
NON_DRUG_ALLERGENS: Tuple[str, ...] = (
    "Latex",
    "Shellfish",
    "Iodinated contrast",
    "Peanuts",
    "Adhesive tape",
    "Bee stings",
    "Eggs",
)

INPATIENT_TREATMENTS: Tuple[str, ...] = (
    "IV fluids",
    "normal saline",
    "supplemental oxygen",
    "BiPAP",
    "physical therapy",
    "occupational therapy",
    "incentive spirometry",
    "nebulizer treatments",
    "an insulin sliding scale",
    "IV diuresis",
    "one unit of packed red blood cells",
    "IV potassium repletion",
    "heparin subcutaneously",
    "enoxaparin for DVT prophylaxis",
    "IV ceftriaxone",
    "IV vancomycin",
    "IV piperacillin-tazobactam",
    "IV furosemide",
    "IV metoprolol",
    "a nicotine patch",
    "a bowel regimen",
    "lactated Ringer's",
)
PNEUMONIA_ANTIBIOTICS: Tuple[str, ...] = (
    "IV ceftriaxone",
    "IV piperacillin-tazobactam",
    "levofloxacin",
    "ampicillin-sulbactam",
    "cefepime",
    "doxycycline",
)
SURGERIES: Tuple[str, ...] = (
    "cholecystectomy",
    "appendectomy",
    "total knee replacement",
    "total hip arthroplasty",
    "coronary artery bypass grafting",
    "hysterectomy",
    "cataract surgery",
    "inguinal hernia repair",
    "percutaneous coronary intervention",
    "carpal tunnel release",
    "tonsillectomy",
    "lumbar laminectomy",
)
SPECIALTIES: Tuple[str, ...] = (
    "cardiology",
    "nephrology",
    "endocrinology",
    "pulmonology",
    "primary care",
    "gastroenterology",
    "neurology",
    "the anticoagulation clinic",
    "infectious disease",
    "urology",
)
LAST_NAMES: Tuple[str, ...] = (
    "Alvarez",
    "Brennan",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Underwood",
    "Vasquez",
    "Walsh",
    "Yilmaz",
    "Zimmerman",
    "Novak",
    "Horvat",
    "Lindqvist",
    "Mensah",
)
PHARMACIES: Tuple[str, ...] = (
    "the community pharmacy",
    "the outpatient pharmacy",
    "a mail-order pharmacy",
    "the VA pharmacy",
)
