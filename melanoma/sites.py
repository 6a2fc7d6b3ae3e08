"""Body sites: the words each source uses, and the one coarse vocabulary all three can fill in.

HAM10000 names 14 fine sites (face, scalp, back, acral...). ISIC 2017 and BCN20000 give the ISIC
Archive's coarse `anatom_site_general` (head/neck, anterior / posterior / lateral torso, upper /
lower extremity, palms/soles, oral/genital). Every fine word falls inside one coarse site, so the
coarse vocabulary is the one that no source's site is lost to: a network trained on several sources
is given the coarse site (its region, and the side of the torso where known). HAM10000's "trunk"
names the torso without its side, so the side is an input of its own.

Model v3 and earlier were given HAM10000's fine words (`FINE_SITES`); their bundles record no site
vocabulary and keep that one.
"""
from __future__ import annotations

# HAM10000's `localization` words: model v3's site input.
FINE_SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
              "lower extremity", "neck", "scalp", "trunk", "upper extremity")
# The ISIC Archive's `anatom_site_general` words (ISIC 2017 and BCN20000 give them).
GENERAL_SITES = ("head/neck", "anterior torso", "posterior torso", "lateral torso", "upper extremity",
                 "lower extremity", "palms/soles", "oral/genital")
# What a user or a CSV may give: either vocabulary.
ACCEPTED_SITES = GENERAL_SITES + tuple(word for word in FINE_SITES if word not in GENERAL_SITES)

TORSO = "torso"
REGIONS = ("head/neck", TORSO, "upper extremity", "lower extremity", "palms/soles", "oral/genital")
TORSO_SIDES = ("anterior", "posterior", "lateral")

# Each accepted word as (region, side of the torso or None).
_REGION_OF = {
    "head/neck": ("head/neck", None), "anterior torso": (TORSO, "anterior"),
    "posterior torso": (TORSO, "posterior"), "lateral torso": (TORSO, "lateral"),
    "upper extremity": ("upper extremity", None), "lower extremity": ("lower extremity", None),
    "palms/soles": ("palms/soles", None), "oral/genital": ("oral/genital", None),
    # HAM10000's fine words, each inside one coarse site (as the ISIC Archive maps them)
    "face": ("head/neck", None), "scalp": ("head/neck", None), "ear": ("head/neck", None),
    "neck": ("head/neck", None), "chest": (TORSO, "anterior"), "abdomen": (TORSO, "anterior"),
    "back": (TORSO, "posterior"), "trunk": (TORSO, None), "hand": ("upper extremity", None),
    "foot": ("lower extremity", None), "acral": ("palms/soles", None), "genital": ("oral/genital", None),
}

SITE_VOCABULARIES = ("ham10000", "general")
FINE_VOCABULARY, GENERAL_VOCABULARY = SITE_VOCABULARIES


def region_of(site: str) -> tuple[str, str | None]:
    """(region, torso side or None) of an accepted word."""
    return _REGION_OF[site]


def coarse_site(site: str) -> str:
    """The coarse word for any accepted word; HAM10000's "trunk" stays the torso, its side unsaid."""
    region, side = region_of(site)
    return f"{side} torso" if side else ("torso, side not recorded" if region == TORSO else region)


def choices(vocabulary: str) -> tuple[str, ...]:
    """The words to offer a user of a network with this vocabulary (any accepted word is taken)."""
    return FINE_SITES if vocabulary == FINE_VOCABULARY else GENERAL_SITES


def in_words_of(vocabulary: str, site: str) -> str | None:
    """The word a network with this vocabulary reads for an accepted word: the word itself where it
    is one of `choices(vocabulary)`, else the coarse word that holds it; None where it has none (a
    coarse site for a fine-words network, which may span several of its words; the side-less trunk)."""
    offered = choices(vocabulary)
    if site in offered:
        return site
    coarse = coarse_site(site)
    return coarse if coarse in offered else None


def used_by(vocabulary: str, site: str) -> bool:
    """Whether a network with this vocabulary reads this word: a fine-words network (v3) cannot
    read a coarse site, which may span several of its words."""
    return vocabulary == GENERAL_VOCABULARY or site in FINE_SITES
