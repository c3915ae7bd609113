"""Comment sentiment and themes by a transparent lexicon, for English and Russian.

How a label is computed (also in the README):

1. The comment is lower-cased (ё as е) and split into words (letters and digits).
2. Each word is looked up in the positive and negative word lists below. An English
   word matches a list entry exactly; a Russian word matches an entry that is a *stem*
   (the word starts with it), so "вежливый", "вежливая", "вежливо" all match "вежлив".
3. A negation ("not", "no", "never", "n't", "не", "нет", "ни") in the two words before a
   sentiment word flips its sign: "not good" counts as negative, "не плохо" as positive.
4. score = positive hits − negative hits: above 0 is *positive*, below 0 *negative*,
   0 (no hits, or as many of each) *neutral*.

Themes work the same way without negation: a comment has a theme when any of the
theme's keywords (stems) appears in it. A person may override both on the answer.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _

POSITIVE_EN = frozenset("""
good great excellent amazing awesome perfect love loved lovely like liked nice friendly
helpful polite fast quick quickly easy convenient clean fresh happy pleased satisfied
recommend wonderful fantastic best thanks thank kind tasty delicious cheap fair smooth
professional attentive comfortable enjoy enjoyed beautiful super brilliant efficient
""".split())

NEGATIVE_EN = frozenset("""
bad terrible awful horrible poor worst hate hated rude slow dirty broken expensive
disappointed disappointing unhappy angry annoying annoyed problem problems wrong late
never waited waiting queue queues cold stale mess messy useless difficult confusing
complicated unfriendly unhelpful lost missing damaged overpriced refund complaint fail
failed error errors crash crashes
""".split())

# Russian stems: a word matches when it starts with the stem.
POSITIVE_RU = (
    "хорош", "отличн", "прекрасн", "замечательн", "супер", "класс", "нрав", "любл",
    "понрав", "вежлив", "приятн", "быстр", "удобн", "чист", "свеж", "доволен", "довольн",
    "рекоменд", "спасибо", "благодар", "вкусн", "дешев", "внимательн", "профессионал",
    "лучш", "молодц", "рад", "комфорт", "помогл", "отзывчив",
)
NEGATIVE_RU = (
    "плох", "ужасн", "отвратит", "кошмар", "хам", "груб", "медлен", "долг", "грязн",
    "сломан", "дорог", "разочаров", "недовол", "зл", "раздраж", "проблем", "ошибк",
    "опозд", "очеред", "холодн", "несвеж", "бесполезн", "сложн", "непонятн", "потерял",
    "поврежд", "обман", "жалоб", "худш", "никогда", "ждал", "ждать",
)

NEGATIONS = frozenset({"not", "no", "never", "dont", "didnt", "isnt", "wasnt", "cant",
                       "не", "нет", "ни"})

# Theme code -> keywords (English words and Russian stems, matched as prefixes).
THEMES: dict[str, tuple[str, ...]] = {
    "staff": ("staff", "cashier", "employee", "manager", "consultant", "seller", "rude",
              "polite", "персонал", "кассир", "сотрудник", "продав", "консультант",
              "менеджер", "вежлив", "хам", "груб"),
    "prices": ("price", "prices", "expensive", "cheap", "cost", "overpriced", "discount",
               "цен", "дорог", "дешев", "стоимост", "скидк"),
    "waiting": ("queue", "queues", "wait", "waited", "waiting", "slow", "line", "очеред",
                "ждал", "ждать", "ожидан", "долг", "медлен"),
    "cleanliness": ("clean", "dirty", "mess", "messy", "чист", "грязн", "убор"),
    "products": ("product", "products", "quality", "fresh", "stale", "choice", "range",
                 "товар", "продукт", "качеств", "свеж", "ассортимент", "выбор"),
    "delivery": ("delivery", "courier", "delivered", "shipping", "late", "доставк",
                 "курьер", "привез", "опозд"),
    "app": ("app", "website", "site", "online", "login", "crash", "приложен", "сайт",
            "онлайн", "вход"),
    "points": ("points", "bonus", "bonuses", "rewards", "reward", "card", "loyalty",
               "балл", "бонус", "карт", "наград", "лояльн"),
}

THEME_LABELS = {
    "staff": _("Staff"), "prices": _("Prices"), "waiting": _("Waiting and queues"),
    "cleanliness": _("Cleanliness"), "products": _("Products and quality"),
    "delivery": _("Delivery"), "app": _("App and web site"),
    "points": _("Points and rewards"),
}

_WORD = re.compile(r"[0-9a-zа-я]+")


def words(text: str) -> list[str]:
    """Return the comment's words, lower case, ё as е, apostrophes dropped ("don't": dont)."""
    return _WORD.findall(text.lower().replace("ё", "е").replace("'", "").replace("’", ""))


def _polarity(word: str) -> int:
    if word in POSITIVE_EN:
        return 1
    if word in NEGATIVE_EN:
        return -1
    if any(word.startswith(stem) for stem in NEGATIVE_RU):
        return -1
    if any(word.startswith(stem) for stem in POSITIVE_RU):
        return 1
    return 0


def sentiment_score(text: str) -> int:
    """Return positive minus negative hits, negations flipping the next two words."""
    score = 0
    tokens = words(text)
    for index, word in enumerate(tokens):
        polarity = _polarity(word)
        if not polarity:
            continue
        if any(previous in NEGATIONS for previous in tokens[max(0, index - 2):index]):
            polarity = -polarity
        score += polarity
    return score


def sentiment_label(text: str) -> str:
    """Return "positive", "neutral" or "negative" for a comment ("" for no comment)."""
    if not text.strip():
        return ""
    score = sentiment_score(text)
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


def themes_find(text: str) -> list[str]:
    """Return the theme codes whose keywords appear in the comment, in THEMES order."""
    tokens = words(text)
    found = []
    for theme, keywords in THEMES.items():
        if any(token.startswith(keyword) for token in tokens for keyword in keywords):
            found.append(theme)
    return found
