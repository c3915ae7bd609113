"""The members app's import: members by card number, through :func:`member_save`.

Also the columns other apps' imports share (the card number). New members are saved
as profiles only: no welcome bonus and no entry tier, which belong to ``rewards``
(this app imports no higher app); the nightly tier evaluation gives them their tier.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from members.importing.files import (
    choice_parser,
    date_parser,
    datetime_parser,
    parse_bool,
    parse_phone,
    text_parser,
)
from members.importing.registry import (
    NEW,
    UNCHANGED,
    UPDATED,
    Column,
    ImportKind,
    Record,
    kind_register,
)
from members.models import Member
from members.services import member_save

FIRST_NAME_REQUIRED = _("A new member needs a first name.")
CARD_TAKEN = _("Another member got this card number while the file was imported.")

CARD_NUMBER_ALIASES = (
    "card", "card no", "card number", "card #", "loyalty card", "card_number",
    "номер карты", "карта", "№ карты", "номер карты лояльности", "карта лояльности",
    "номер дисконтной карты", "дисконтная карта",
)


def card_number_column(*, required: bool = True, help_text=None) -> Column:
    """Return the card number column every member-related import shares."""
    return Column(
        "card_number", _("card number"),
        text_parser(max_length=32, compact=True), required=required,
        aliases=CARD_NUMBER_ALIASES,
        help_text=help_text or _("The number on the loyalty card; spaces are ignored."),
    )


_GENDERS = {
    "female": Member.Gender.FEMALE, "f": Member.Gender.FEMALE, "woman": Member.Gender.FEMALE,
    "ж": Member.Gender.FEMALE, "жен": Member.Gender.FEMALE, "женский": Member.Gender.FEMALE,
    "male": Member.Gender.MALE, "m": Member.Gender.MALE, "man": Member.Gender.MALE,
    "м": Member.Gender.MALE, "муж": Member.Gender.MALE, "мужской": Member.Gender.MALE,
}

_LANGUAGES = {
    "en": "en", "eng": "en", "english": "en", "англ": "en", "английский": "en",
    "ru": "ru", "rus": "ru", "russian": "ru", "рус": "ru", "русский": "ru",
}

# Profile fields an import may set; status and points never come from a file.
PROFILE_FIELDS = (
    "first_name", "last_name", "phone", "email", "birth_date", "gender", "city", "language",
    "email_consent", "sms_consent", "enrolled_at",
)


@kind_register
class MembersKind(ImportKind):
    """Members by card number: new cards are created, known ones updated."""

    key = "members"
    label = _("Members")
    description = _(
        "Creates members and updates their profiles, found by card number. An empty cell "
        "leaves that part of a member's profile as it is; points and status are never "
        "imported here."
    )
    record_name = _("member")
    permissions = ("members.add_member", "members.change_member")
    key_columns = ("card_number",)
    columns = (
        card_number_column(),
        Column("first_name", _("first name"), text_parser(max_length=100),
               aliases=("first name", "name", "given name", "имя"),
               help_text=_("Required for a new member.")),
        Column("last_name", _("last name"), text_parser(max_length=100),
               aliases=("last name", "surname", "family name", "фамилия")),
        Column("phone", _("phone"), parse_phone,
               aliases=("phone", "phone number", "mobile", "mobile phone", "tel",
                        "телефон", "мобильный телефон", "моб телефон", "номер телефона"),
               help_text=_("Any common format: +7 912 345-67-89, 8 (912) 3456789, "
                           "9123456789.")),
        Column("email", _("e-mail"), text_parser(max_length=254),
               aliases=("email", "e-mail", "mail", "email address", "эл почта",
                        "электронная почта", "почта", "адрес электронной почты")),
        Column("birth_date", _("birth date"), date_parser(future=False),
               aliases=("birth date", "date of birth", "birthday", "dob", "дата рождения",
                        "день рождения"),
               help_text=_("dd.mm.yyyy or yyyy-mm-dd.")),
        Column("gender", _("gender"), choice_parser(_GENDERS),
               aliases=("gender", "sex", "пол"),
               help_text=_("female / male, or ж / м.")),
        Column("city", _("city"), text_parser(max_length=100), aliases=("city", "город")),
        Column("language", _("language"), choice_parser(_LANGUAGES),
               aliases=("language", "lang", "язык"),
               help_text=_("en / ru, or English / Russian, английский / русский.")),
        Column("email_consent", _("e-mail consent"), parse_bool,
               aliases=("email consent", "e-mail consent", "email opt in", "согласие на email",
                        "согласие на e-mail", "согласие email", "согласие на рассылку",
                        "согласие на рассылку по e-mail", "согласие на почту"),
               help_text=_("yes / no, да / нет, 1 / 0.")),
        Column("sms_consent", _("SMS consent"), parse_bool,
               aliases=("sms consent", "sms opt in", "согласие на sms", "согласие на смс",
                        "согласие sms", "согласие смс", "согласие на sms рассылку"),
               help_text=_("yes / no, да / нет, 1 / 0.")),
        Column("enrolled_at", _("enrolled at"), datetime_parser(future=False),
               aliases=("enrolled", "enrolled at", "joined", "join date", "дата регистрации",
                        "дата вступления", "дата выдачи карты"),
               help_text=_("When the member joined; today if empty.")),
    )

    def row_key(self, record: Record) -> str:
        return record.values["card_number"] or ""

    def check(self, records: list[Record], job) -> None:
        cards = {r.values["card_number"] for r in records if r.values["card_number"]}
        existing = {m.card_number: m for m in Member.objects.filter(card_number__in=cards)}
        for record in records:
            values = record.values
            if not values["card_number"]:
                continue
            given = {name: values[name] for name in PROFILE_FIELDS if values[name] is not None}
            member = existing.get(values["card_number"])
            if member is None:
                exclude = []
                if not given.get("first_name"):
                    record.error("first_name", FIRST_NAME_REQUIRED)
                    exclude = ["first_name"]  # said once, in words of our own
                member = Member(
                    card_number=values["card_number"], source_channel=Member.Channel.IMPORT,
                    **given,
                )
                changed = list(given)
                outcome = NEW
            else:
                changed = [name for name, value in given.items() if getattr(member, name) != value]
                if not changed:
                    record.outcome = UNCHANGED
                    continue
                for name in changed:
                    setattr(member, name, given[name])
                outcome = UPDATED
                # Check only what the file changes: old data is not this file's fault.
                exclude = [f.name for f in Member._meta.fields if f.name not in changed]
            try:
                member.full_clean(
                    exclude=exclude, validate_unique=False, validate_constraints=False
                )
            except ValidationError as error:
                _validation_errors(record, error)
                continue
            record.outcome = outcome
            record.target = member
            record.plan["changed"] = changed

    def apply(self, records: list[Record], job) -> None:
        for record in records:
            try:
                with transaction.atomic():
                    member_save(
                        member=record.target, changed_fields=record.plan["changed"],
                        actor=job.created_by,
                    )
            except ValidationError as error:
                _validation_errors(record, error)
            except IntegrityError:
                record.error("card_number", CARD_TAKEN)


def _validation_errors(record: Record, error: ValidationError) -> None:
    """Add a model validation error to the record, on its column where there is one."""
    columns = {column.key for column in MembersKind.columns}
    if not hasattr(error, "error_dict"):
        record.error("", "; ".join(error.messages))
        return
    for name, messages in error.message_dict.items():
        record.error(name if name in columns else "card_number", "; ".join(messages))
