"""Language families of the XTREME / XTREME-R languages (as listed in Hu et al. 2020, Table 5, and
Ruder et al. 2021), for grouping per-language gains."""

FAMILIES: dict[str, tuple[str, ...]] = {
    "Afro-Asiatic": ("ar", "he"),
    "Austro-Asiatic": ("vi",),
    "Austronesian": ("id", "jv", "ms", "tl"),
    "Basque": ("eu",),
    "Creole": ("ht",),
    "Dravidian": ("ml", "ta", "te", "kn"),
    "Indo-European": ("af", "bg", "bn", "de", "el", "en", "es", "fa", "fr", "hi", "it", "mr", "nl", "pt", "ru",
                      "ur", "gu", "lt", "pa", "pl", "ro", "uk", "cs", "da", "hr", "sv", "sk", "sl", "sr", "hy",
                      "ca", "gl", "be", "bs", "cy", "ga", "is", "lv", "mk", "nb", "no", "oc", "sq", "yi", "ne"),
    "Japonic": ("ja",),
    "Kartvelian": ("ka",),
    "Koreanic": ("ko",),
    "Kra-Dai": ("th",),
    "Niger-Congo": ("sw", "yo", "wo"),
    "Quechuan": ("qu",),
    "Sino-Tibetan": ("zh", "my"),
    "Turkic": ("kk", "tr", "az", "uz", "tt"),
    "Uralic": ("et", "fi", "hu"),
}
_FAMILY_OF = {language: name for name, languages in FAMILIES.items() for language in languages}


def family(language: str) -> str:
    """The family of an ISO 639-1 code (regional suffixes such as zh-Hans ignored), else "other"."""
    return _FAMILY_OF.get(language.split("-")[0].split("_")[0].lower(), "other")
