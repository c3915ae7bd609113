"""The public answer pages' own words, in English and Russian.

Kept here beside the surveys' own texts (which are stored per language too) rather
than in the translation catalogues: a member's page must be in the member's language
whatever the staff's interface language is, and complete in both from day one.
"""

TEXTS = {
    "en": {
        "title": "Your opinion",
        "not_likely": "Not at all likely",
        "very_likely": "Extremely likely",
        "not_satisfied": "Very dissatisfied",
        "very_satisfied": "Very satisfied",
        "comment": "Anything you would like to tell us? (optional)",
        "send": "Send",
        "choose": "Choose one",
        "thanks_title": "Thank you!",
        "thanks": "Your answer has been received. It helps us get better.",
        "answered_title": "You have already answered",
        "answered": "This link has already been used, so your answer is kept as it was. "
                    "Thank you!",
        "expired_title": "This link has expired",
        "expired": "The survey link was valid until %(until)s. Nothing was saved.",
        "closed_title": "This survey is closed",
        "closed": "The survey no longer takes answers. Nothing was saved.",
        "forged_title": "This link is not valid",
        "forged": "Please open the link exactly as it came in your message. Nothing was "
                  "saved.",
        "errors": "Please correct the answer below. Nothing was saved yet.",
        "required": "(required)",
        "language": "Язык: Русский",
    },
    "ru": {
        "title": "Ваше мнение",
        "not_likely": "Совсем маловероятно",
        "very_likely": "Очень вероятно",
        "not_satisfied": "Совсем не доволен",
        "very_satisfied": "Очень доволен",
        "comment": "Хотите что-то добавить? (необязательно)",
        "send": "Отправить",
        "choose": "Выберите вариант",
        "thanks_title": "Спасибо!",
        "thanks": "Ваш ответ получен. Он помогает нам стать лучше.",
        "answered_title": "Вы уже ответили",
        "answered": "По этой ссылке уже ответили, ваш ответ сохранён как был. Спасибо!",
        "expired_title": "Срок действия ссылки истёк",
        "expired": "Ссылка на опрос действовала до %(until)s. Ничего не сохранено.",
        "closed_title": "Опрос завершён",
        "closed": "Опрос больше не принимает ответы. Ничего не сохранено.",
        "forged_title": "Ссылка недействительна",
        "forged": "Откройте ссылку точно так, как она пришла в сообщении. Ничего не "
                  "сохранено.",
        "errors": "Исправьте ответ ниже. Пока ничего не сохранено.",
        "required": "(обязательно)",
        "language": "Language: English",
    },
}

# Score errors are shown in the member's language too.
SCORE_ERRORS = {
    "en": {"required": "Choose a score.",
           "range": "The score must be a whole number from %(low)s to %(high)s.",
           "choice": "Choose one of the options.",
           "long": "Keep the text under %(limit)s characters."},
    "ru": {"required": "Выберите оценку.",
           "range": "Оценка должна быть целым числом от %(low)s до %(high)s.",
           "choice": "Выберите один из вариантов.",
           "long": "Сократите текст до %(limit)s символов."},
}
