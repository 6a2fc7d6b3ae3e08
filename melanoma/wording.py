"""What the app and the commands say in words that are not a call (the call's own words are in
call.py): the diagnoses' names for people, the not-a-lesion refusal, and the wording's measured
anchors (how close below the threshold counts as close)."""
from __future__ import annotations

DX_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "vasc": "Vascular lesion",
}

DX_TYPE_NAMES = {"histo": "histopathology", "follow_up": "follow-up examination",
                 "consensus": "expert consensus", "confocal": "confocal microscopy"}

# A refused picture may be no lesion at all, a photo of skin from an ordinary camera (not a
# dermatoscope's), or a lesion photo from a dermatoscope unlike the training ones: the wording fits all three.
NOT_A_LESION_REASON = ("not a dermatoscope photo of a skin lesion (another kind of picture, skin photographed with an "
                       "ordinary camera, or a dermatoscope or lighting unlike the training photos'): no call; assess "
                       "clinically")

# The same refusal on a card, in plain words (the scores behind it go in a details box).
NOT_A_LESION_PLAIN = ("This picture does not look like the dermatoscope photos of skin lesions the model learnt from, "
                      "so the model gives it no call and no probability. A photo of skin taken with an ordinary or "
                      "phone camera is not a dermatoscope photo either: the model cannot judge one. Now and then a "
                      "real dermatoscope photo from another clinic's dermatoscope, or under unusual lighting, is "
                      "refused too.")

# A P(melanoma) this close below the threshold (absolute, 5 percentage points) is called close to it:
# photos of one lesion disagree by more. Of 117 HAM10000 validation lesions with several photos and a
# mean P(melanoma) of 0.05-0.3, the photos' P(melanoma) spanned a median 10.1 points (quartiles 5.0
# and 16.5): another photo of such a lesion could well land above the threshold.
CLOSE_BELOW_THRESHOLD = 0.05

# The differential's other malignant (or pre-malignant) diagnoses: the call is about melanoma only,
# so where one of these leads the differential the card says that it needs a clinician too.
OTHER_MALIGNANCIES = ("bcc", "akiec")

DIFFERENTIAL_NAMES = {  # in full, for people; KNOWN_DX order is the differential's class order
    "mel": "melanoma",
    "nv": "melanocytic naevus",
    "bkl": "benign keratosis",
    "bcc": "basal cell carcinoma",
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "df": "dermatofibroma",
    "vasc": "vascular lesion",
}
