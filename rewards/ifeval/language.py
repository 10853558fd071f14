"""Offline language identification for the IF checkers (IFEval's `language:response_language` and the
"in English" part of its case instructions).

IFEval uses `langdetect`; it is not a dependency here, so this is a documented heuristic over IFEval's 30
response languages: the writing system of the letters first (most languages own one), then, inside the
shared scripts (Latin, Cyrillic, Arabic, Devanagari), letters only one language uses and short
function-word lists. It is meant for whole responses of a sentence or more, not single words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from rewards.ifeval._base import Constraint

# Unicode script (first word of the character name) -> the single IFEval language written in it.
_SCRIPT_LANGUAGE = {
    "BENGALI": "bn", "TAMIL": "ta", "TELUGU": "te", "KANNADA": "kn", "MALAYALAM": "ml", "GUJARATI": "gu",
    "GURMUKHI": "pa", "THAI": "th", "HANGUL": "ko", "HEBREW": "he", "HIRAGANA": "ja", "KATAKANA": "ja",
    "CJK": "ja",
}
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(text.split())
    for lang, text in {
        "en": "the and is are of to in that it with for on was this be have not you they but what which",
        "es": "el la los las de que y en es por con para una del se lo más pero como está son",
        "pt": "o os as de que e em é por com para uma do da não se mais mas como está são você",
        "fr": "le la les de et est que en des du une pour dans pas qui sur avec ce sont il elle nous",
        "de": "der die das und ist nicht ein eine zu den mit von sich auf für dem des auch es ich sie",
        "it": "il lo la gli le di che e è per non una con del della sono anche come più ma questo",
        "pl": "i w nie na się z jest że do to jak ale co od tak po są dla czy przez",
        "vi": "và là của có không những được trong một cho người này với các đã khi",
        "fi": "ja on ei se että hän oli ovat mutta kun tai myös joka kuin ole tämä niin",
        "sw": "na ya wa kwa ni za katika la kuwa hii au lakini pia kama yake watu",
        "ru": "и в не на что я с он как это по но из у за то же все так его был",
        "uk": "і в не на що я з він як це по але із у за та також його був є",
        "bg": "и в не на че да се с как това по но от за е са ще като той бе",
        "hi": "है के में की और को से का हैं कि यह पर भी नहीं एक",
        "mr": "आहे आणि या हे की व ते त्या मध्ये आहेत होते केले पण नाही",
        "ne": "छ र को मा का ले हो पनि गर्न भएको छन् यो थियो गरेको",
        "ar": "في من على إلى أن هذا التي الذي مع كان عن ما هو لا",
        "fa": "و در به از که این را با است برای آن یک می شود",
        "ur": "کے میں کی ہے اور سے کو کہ یہ پر بھی ہیں نہیں ایک",
    }.items()
}
# Letters that occur in one language of a shared script and not in its neighbours.
_MARKERS = {
    "uk": "іїєґ", "ru": "ыэё", "bg": "ъ", "pl": "ąęłńśźż", "de": "ßäöü", "es": "ñ¿¡", "pt": "ãõ",
    "fr": "œêëç", "vi": "ơưđạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ", "fi": "äö",
    "ur": "ےںٹڈڑھ", "fa": "پچژگ",
}
_SCRIPT_GROUPS = {
    "LATIN": ("en", "es", "pt", "fr", "de", "it", "pl", "vi", "fi", "sw"),
    "CYRILLIC": ("ru", "uk", "bg"),
    "ARABIC": ("ar", "fa", "ur"),
    "DEVANAGARI": ("hi", "mr", "ne"),
}
# Function word -> the Latin-script languages that use it, for the all-ASCII fast path.
_LATIN_WORDS: dict[str, tuple[str, ...]] = {}
for _lang in _SCRIPT_GROUPS["LATIN"]:
    for _word in _FUNCTION_WORDS[_lang]:
        _LATIN_WORDS[_word] = (*_LATIN_WORDS.get(_word, ()), _lang)
_ASCII_WORD_RE = re.compile(r"[a-z]+")
# Function words of the other Latin-script languages that English does not share: text with none of
# them is English without counting.
_NOT_ENGLISH = frozenset(_LATIN_WORDS) - _FUNCTION_WORDS["en"]
SUPPORTED_LANGUAGES = frozenset(_SCRIPT_LANGUAGE.values()) | {
    lang for group in _SCRIPT_GROUPS.values() for lang in group
}


def _strip_edges(token: str) -> str:
    # Punctuation, symbols and digits off both ends; Indic vowel signs (marks, which `\w` does not match)
    # stay in their words.
    keep = [i for i, ch in enumerate(token) if unicodedata.category(ch)[0] in "LM"]
    return token[keep[0] : keep[-1] + 1] if keep else ""


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else ""


def _dominant_script(text: str) -> str:
    scripts = Counter(_script(ch) for ch in text if ch.isalpha())
    return scripts.most_common(1)[0][0] if scripts else ""


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of `text` among `SUPPORTED_LANGUAGES`, or None when it has no letters or no
    evidence for any of them."""
    if text.isascii():
        return _detect_ascii(text)
    script = _dominant_script(text)
    if script in _SCRIPT_LANGUAGE:
        if script == "CJK" and not any(_script(ch) in ("HIRAGANA", "KATAKANA") for ch in text):
            return None  # Han characters without kana: Chinese, which IFEval's list does not hold
        return _SCRIPT_LANGUAGE[script]
    group = _SCRIPT_GROUPS.get(script)
    if group is None:
        return None
    tokens = [_strip_edges(t) for t in text.lower().split()]
    lowered = text.lower()
    scores = {}
    for lang in group:
        hits = sum(t in _FUNCTION_WORDS[lang] for t in tokens)
        marks = sum(lowered.count(ch) for ch in _MARKERS.get(lang, ""))
        scores[lang] = hits + 2 * marks
    best = max(group, key=lambda lang: scores[lang])  # ties go to the group's first (most common) language
    if scores[best] == 0:
        plain = all(ch.isascii() for ch in lowered if ch.isalpha())
        return group[0] if script == "LATIN" and plain else None
    return best


def _detect_ascii(text: str) -> str | None:
    # Same scoring as below for plain Latin text (no marker letters can occur), one dict lookup a word.
    found = _ASCII_WORD_RE.findall(text.lower())
    if not found:
        return None
    if _NOT_ENGLISH.isdisjoint(found):
        return "en"
    scores = dict.fromkeys(_SCRIPT_GROUPS["LATIN"], 0)
    for word in found:
        for lang in _LATIN_WORDS.get(word, ()):
            scores[lang] += 1
    return max(scores, key=scores.__getitem__)  # ties (and no evidence) go to English, listed first


def looks_english(text: str) -> bool:
    """Letters mostly Latin and no other language's evidence outweighing English; short texts without
    function words ("ALL GOOD HERE") count as English unless their letters say otherwise."""
    return detect_language(text) == "en"


def check_language(text: str, language: str) -> bool:
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(
            f"response_language: unsupported language code {language!r}; supported: {sorted(SUPPORTED_LANGUAGES)}"
        )
    return detect_language(text) == language


# English names for the instruction text, as IFEval writes them.
LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
    "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
    "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean",
    "pl": "Polish", "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili",
    "kn": "Kannada", "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}

RESPONSE_LANGUAGE = Constraint(
    name="response_language",
    sample_params=lambda rng: {"language": rng.choice(sorted(LANGUAGE_NAMES))},
    describe=lambda p: (
        f"Your entire response should be in {LANGUAGE_NAMES.get(p['language'], p['language'])} language, "
        "no other language is allowed."
    ),
    check=lambda r, p, _: check_language(r, p["language"]),
    # The task generator writes English sentence pools only; checked only.
    sampled=False,
)
