"""The rule that decides which model ships, as numbers and in words: the lab's `compare` applies it
(melanoma/lab/decision.py), and the About page's model card states it. Set in issue 29, before any
v3 test split was looked at."""

MAX_SHIFT_COST = 0.02  # no synthetic camera shift may cost more validation AUC than this, on any source
MAX_DARKENING_SHIFT = 0.02  # darkening clear photos' corners must move mean P(melanoma) by less than this
FLOOR_SOURCE = "ham10000"
# FLOOR_SOURCE's validation AUC may fall at most this far below model v1's (HAM10000 alone). Issue 32
# anchors it to v1 rather than to each shipped model, so that it cannot slide down release by release.
FLOOR_MAX_DROP = 0.04
TIE_MARGIN = 0.005  # worst-source AUCs this close count as a tie, and the pooled AUC decides

RULE_IN_WORDS = (
    "A new model replaces the shipped one only by a rule written before its training run and applied on "
    "validation photos, per data source, paired with the shipped model on the same photos: its AUC on the "
    "source it knows least must beat the shipped model's worst source (95% interval above zero); on every "
    f"source no simulated camera change may cost more than {MAX_SHIFT_COST} of AUC and darkened photo corners "
    f"must move P(melanoma) by less than {MAX_DARKENING_SHIFT}; and its HAM10000 AUC may fall at most "
    f"{FLOOR_MAX_DROP} below model v1's (trained on HAM10000 alone; the floor stays there, so that it cannot "
    "slide down release by release). It is judged by its weakest source because a clinician with "
    "their own dermatoscope stands where the model is weakest, not where it is best.")
