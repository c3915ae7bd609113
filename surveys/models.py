"""Surveys (NPS, CSAT, multi-question), invitations, answers, follow-ups and roll-ups.

Who may do what: Marketing managers configure surveys and send invitations, Support
works the follow-up queue, Analysts read. Answers arrive through a public page reached
by a signed, single-use invitation link or from a CSV of an external survey tool.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member, PointsEntry, Purchase, Store

NPS_QUESTION_EN = "How likely are you to recommend us to a friend or colleague?"
NPS_QUESTION_RU = "Насколько вероятно, что вы порекомендуете нас другу или коллеге?"
CSAT_QUESTION_EN = "How satisfied are you with us?"
CSAT_QUESTION_RU = "Насколько вы довольны нами?"

# The ready preset of the loyalty index (see the README): each name is a question code.
LOYALTY_PRESET = "(satisfaction + service) / emotional_connection"


class Touchpoint(models.TextChoices):
    AFTER_PURCHASE = "after_purchase", _("After a purchase")
    AFTER_SUPPORT = "after_support", _("After a support contact")
    STORE = "store", _("In store")
    DELIVERY = "delivery", _("Delivery")


class Language(models.TextChoices):
    EN = "en", "English"
    RU = "ru", "Русский"


class Sentiment(models.TextChoices):
    POSITIVE = "positive", _("Positive")
    NEUTRAL = "neutral", _("Neutral")
    NEGATIVE = "negative", _("Negative")


class Survey(models.Model):
    """A survey: what is asked, in which languages, at which touchpoint, and when."""

    class Kind(models.TextChoices):
        NPS = "nps", _("NPS (0-10)")
        CSAT = "csat", _("CSAT")
        MULTI = "multi", _("Several questions")

    code = models.SlugField(
        _("code"), max_length=50, unique=True,
        help_text=_("Short name used in imported files, e.g. nps-after-purchase."),
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.NPS)
    csat_scale = models.PositiveSmallIntegerField(
        _("CSAT scale"), choices=[(5, "1-5"), (10, "1-10")], default=5,
        help_text=_("CSAT only: scores from 1 to 5 or from 1 to 10."),
    )
    touchpoint = models.CharField(
        _("touchpoint"), max_length=20, choices=Touchpoint.choices,
        default=Touchpoint.AFTER_PURCHASE,
    )

    # --- texts
    question_en = models.CharField(
        _("question (English)"), max_length=300, blank=True,
        help_text=_("Empty: the standard question of the kind."),
    )
    question_ru = models.CharField(
        _("question (Russian)"), max_length=300, blank=True,
        help_text=_("Empty: the standard question of the kind."),
    )
    intro_en = models.TextField(_("introduction (English)"), blank=True)
    intro_ru = models.TextField(_("introduction (Russian)"), blank=True)
    default_language = models.CharField(
        _("default language"), max_length=2, choices=Language.choices, default=Language.RU,
        help_text=_("The language of the answer page when the member's is not known."),
    )

    # --- when
    starts_at = models.DateTimeField(_("active from"), default=timezone.now)
    ends_at = models.DateTimeField(
        _("active until"), null=True, blank=True,
        help_text=_("Answers are accepted until then; empty: no end."),
    )
    link_valid_days = models.PositiveSmallIntegerField(
        _("links valid for (days)"), default=14,
        help_text=_("An invitation link expires this many days after it is sent."),
    )

    # --- loyalty index (multi-question surveys)
    loyalty_formula = models.CharField(
        _("loyalty index formula"), max_length=200, blank=True,
        help_text=_("Arithmetic over the codes of scale questions, e.g. "
                    "(satisfaction + service) / emotional_connection. Empty: no index."),
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+", editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(csat_scale__in=[5, 10]), name="survey_csat_scale"),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="survey_window_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:surveys_survey_results", args=[self.pk])

    @property
    def score_min(self) -> int:
        return 0 if self.kind == self.Kind.NPS else 1

    @property
    def score_max(self) -> int:
        return 10 if self.kind == self.Kind.NPS else self.csat_scale

    def question(self, language: str) -> str:
        """Return the main question in ``language`` (en or ru)."""
        own = self.question_ru if language == "ru" else self.question_en
        if own:
            return own
        if self.kind == self.Kind.CSAT:
            return CSAT_QUESTION_RU if language == "ru" else CSAT_QUESTION_EN
        return NPS_QUESTION_RU if language == "ru" else NPS_QUESTION_EN

    def intro(self, language: str) -> str:
        return self.intro_ru if language == "ru" else self.intro_en

    def is_open(self, at=None) -> bool:
        """Return whether answers are accepted at ``at`` (default: now)."""
        at = at or timezone.now()
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


class Question(models.Model):
    """One question of a multi-question survey."""

    class Kind(models.TextChoices):
        SCALE = "scale", _("Scale")
        CHOICE = "choice", _("Choice")
        TEXT = "text", _("Free text")

    survey = models.ForeignKey(
        Survey, verbose_name=_("survey"), on_delete=models.CASCADE, related_name="questions"
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    code = models.SlugField(
        _("code"), max_length=40,
        help_text=_("Name used in the loyalty index formula, e.g. satisfaction."),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.SCALE)
    text_en = models.CharField(_("question (English)"), max_length=300)
    text_ru = models.CharField(_("question (Russian)"), max_length=300)
    scale_min = models.SmallIntegerField(_("scale from"), default=1)
    scale_max = models.SmallIntegerField(_("scale to"), default=10)
    choices_en = models.TextField(
        _("choices (English)"), blank=True, help_text=_("Choice questions: one per line.")
    )
    choices_ru = models.TextField(
        _("choices (Russian)"), blank=True,
        help_text=_("Choice questions: one per line, in the same order as in English."),
    )
    required = models.BooleanField(_("required"), default=True)

    class Meta:
        verbose_name = _("question")
        verbose_name_plural = _("questions")
        ordering = ["survey", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["survey", "code"], name="question_code_unique"),
            models.CheckConstraint(
                condition=Q(scale_max__gt=models.F("scale_min")), name="question_scale_order"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def text(self, language: str) -> str:
        return self.text_ru if language == "ru" else self.text_en

    def choices(self, language: str) -> list[str]:
        """Return the choices in ``language`` (English where a Russian one is missing)."""
        english = [line.strip() for line in self.choices_en.splitlines() if line.strip()]
        if language != "ru":
            return english
        russian = [line.strip() for line in self.choices_ru.splitlines() if line.strip()]
        return [russian[i] if i < len(russian) else text for i, text in enumerate(english)]


class Invitation(models.Model):
    """One member invited to one survey, with a single-use link that expires.

    The link is ``<link_key>.<signature>``: ``link_key`` is random and stored (the
    lookup), the signature is an HMAC of it with the ``SECRET_KEY`` and is never stored,
    so reading this table (or a backup, or an export) gives no working link, while a
    task can still build the link again from the invitation's id to send or resend it.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")

    survey = models.ForeignKey(
        Survey, verbose_name=_("survey"), on_delete=models.PROTECT, related_name="invitations"
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT,
        related_name="survey_invitations",
    )
    link_key = models.CharField(
        _("link key"), max_length=32, unique=True, editable=False,
        help_text=_("Random lookup part of the link; its signature is never stored."),
    )
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, default=Language.RU
    )
    channel = models.CharField(
        _("channel"), max_length=5, choices=Channel.choices, default=Channel.EMAIL
    )
    purchase = models.ForeignKey(
        Purchase, verbose_name=_("purchase"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
        help_text=_("The purchase the invitation is about, if any."),
    )
    store = models.ForeignKey(
        Store, verbose_name=_("store"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("sent at"), default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(_("expires at"))
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    delivery_id = models.BigIntegerField(
        _("message"), null=True, blank=True,
        help_text=_("The message delivery that carried the link (campaigns)."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("sent by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-id"]
        constraints = [
            # Inviting a segment twice invites each member once.
            models.UniqueConstraint(fields=["survey", "member"], name="invitation_once"),
        ]
        indexes = [models.Index(fields=["survey", "created_at"], name="invitation_survey_idx")]

    def __str__(self) -> str:
        return f"{self.survey} → {self.member_id}"


class Response(models.Model):
    """One member's answer to a survey; score and segment snapshots are taken on arrival."""

    class Source(models.TextChoices):
        LINK = "link", _("Invitation link")
        IMPORT = "import", _("Imported")

    survey = models.ForeignKey(
        Survey, verbose_name=_("survey"), on_delete=models.PROTECT, related_name="responses"
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT,
        related_name="survey_responses",
    )
    invitation = models.OneToOneField(
        Invitation, verbose_name=_("invitation"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="response",
    )
    source = models.CharField(_("source"), max_length=6, choices=Source.choices)
    score = models.SmallIntegerField(
        _("score"), null=True, blank=True,
        help_text=_("NPS 0-10 or CSAT 1-5 / 1-10; empty for a multi-question survey."),
    )
    comment = models.TextField(_("comment"), blank=True)
    answered_at = models.DateTimeField(_("answered at"), default=timezone.now)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices,
                                default=Language.RU)

    # --- snapshots for breakdowns: what was true when the answer arrived
    touchpoint = models.CharField(_("touchpoint"), max_length=20, choices=Touchpoint.choices)
    store = models.ForeignKey(
        Store, verbose_name=_("store"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    tier_id = models.BigIntegerField(_("tier"), null=True, blank=True)
    rfm_segment = models.CharField(_("RFM segment"), max_length=40, blank=True)

    # --- multi-question surveys
    loyalty_index = models.DecimalField(
        _("loyalty index"), max_digits=10, decimal_places=4, null=True, blank=True
    )

    # --- comment analysis
    sentiment_auto = models.CharField(
        _("sentiment (computed)"), max_length=8, choices=Sentiment.choices, blank=True,
        editable=False,
    )
    sentiment_override = models.CharField(
        _("sentiment (set by hand)"), max_length=8, choices=Sentiment.choices, blank=True,
        help_text=_("Overrides the computed label; empty keeps it."),
    )
    themes = models.CharField(
        _("themes"), max_length=300, blank=True,
        help_text=_("Comma-separated theme codes; computed from the comment, may be corrected."),
    )

    import_key = models.CharField(
        _("import key"), max_length=200, null=True, blank=True, unique=True, editable=False,
        help_text=_("Identity of an imported answer: the same row twice is stored once."),
    )

    class Meta:
        verbose_name = _("answer")
        verbose_name_plural = _("answers")
        ordering = ["-answered_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=0, score__lte=10),
                name="response_score_0_10",
            ),
        ]
        indexes = [
            models.Index(fields=["answered_at"], name="response_time_idx"),
            models.Index(fields=["survey", "answered_at"], name="response_survey_time_idx"),
            models.Index(fields=["member", "-answered_at"], name="response_member_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.survey} · {self.score if self.score is not None else '—'}"

    @property
    def sentiment(self) -> str:
        """Return the label in force: the override, else the computed one."""
        return self.sentiment_override or self.sentiment_auto

    def get_sentiment_display_effective(self) -> str:
        return Sentiment(self.sentiment).label if self.sentiment else ""

    @property
    def theme_list(self) -> list[str]:
        return [theme for theme in self.themes.split(",") if theme]


class Answer(models.Model):
    """The answer to one question of a multi-question survey."""

    response = models.ForeignKey(
        Response, verbose_name=_("answer"), on_delete=models.CASCADE, related_name="answers"
    )
    question = models.ForeignKey(
        Question, verbose_name=_("question"), on_delete=models.PROTECT, related_name="+"
    )
    number = models.SmallIntegerField(_("number"), null=True, blank=True)
    text = models.TextField(_("text"), blank=True)

    class Meta:
        verbose_name = _("question answer")
        verbose_name_plural = _("question answers")
        constraints = [
            models.UniqueConstraint(fields=["response", "question"], name="answer_once"),
        ]

    def __str__(self) -> str:
        return f"{self.question_id}: {self.number if self.number is not None else self.text}"


class ResponseTheme(models.Model):
    """One theme of a comment, a row each so the frequent themes are one GROUP BY."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="theme_rows")
    theme = models.CharField(_("theme"), max_length=30)
    answered_at = models.DateTimeField(_("answered at"))
    survey_id_copy = models.BigIntegerField(_("survey"))

    class Meta:
        verbose_name = _("comment theme")
        verbose_name_plural = _("comment themes")
        constraints = [
            models.UniqueConstraint(fields=["response", "theme"], name="response_theme_once"),
        ]
        indexes = [models.Index(fields=["answered_at"], name="response_theme_time_idx")]

    def __str__(self) -> str:
        return self.theme


class FollowUp(models.Model):
    """A detractor or unhappy CSAT answer that Support calls back."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        IN_PROGRESS = "in_progress", _("In progress")
        RESOLVED = "resolved", _("Resolved")

    class Outcome(models.TextChoices):
        SOLVED = "solved", _("Problem solved")
        APOLOGISED = "apologised", _("Apologised, nothing to fix")
        NOT_REACHED = "not_reached", _("Could not reach the member")
        DECLINED = "declined", _("Member declined to talk")

    response = models.OneToOneField(
        Response, verbose_name=_("answer"), on_delete=models.PROTECT, related_name="follow_up"
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT,
        related_name="survey_follow_ups",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("owner"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.OPEN
    )
    due_date = models.DateField(_("due date"))
    notes = models.TextField(_("notes"), blank=True)
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices, blank=True)
    outcome_note = models.CharField(_("outcome note"), max_length=500, blank=True)
    goodwill_points = models.PositiveIntegerField(_("goodwill points"), default=0)
    goodwill_entry = models.OneToOneField(
        PointsEntry, verbose_name=_("goodwill entry"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("resolved by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(_("opened at"), default=timezone.now)

    class Meta:
        verbose_name = _("follow-up")
        verbose_name_plural = _("follow-ups")
        ordering = ["due_date", "id"]
        permissions = [("resolve_followup", _("Can resolve a survey follow-up"))]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="resolved") | ~Q(outcome=""),
                name="follow_up_resolved_has_outcome",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "due_date"], name="follow_up_queue_idx"),
            models.Index(fields=["member", "-id"], name="follow_up_member_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_status_display()}"

    @property
    def is_overdue(self) -> bool:
        return self.status != self.Status.RESOLVED and self.due_date < timezone.localdate()


class ResponseDaily(models.Model):
    """Roll-up: answers per day, survey and one breakdown (all, tier, RFM, store).

    Each answer counts in four rows (``dimension`` all, tier, rfm and store), so a
    breakdown is a GROUP BY over a few thousand rows instead of a million answers.
    ``invited`` (invitations sent that day) is kept on the ``all`` rows only. Rebuilt
    for whole days by :func:`surveys.services.responses_rollup_refresh`.
    """

    day = models.DateField(_("day"))
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("kind"), max_length=8)
    touchpoint = models.CharField(_("touchpoint"), max_length=20)
    dimension = models.CharField(_("breakdown"), max_length=8)
    value = models.CharField(_("value"), max_length=40, blank=True)
    responses = models.PositiveIntegerField(default=0)
    promoters = models.PositiveIntegerField(default=0)
    passives = models.PositiveIntegerField(default=0)
    detractors = models.PositiveIntegerField(default=0)
    score_sum = models.BigIntegerField(default=0)
    top_two = models.PositiveIntegerField(default=0)
    bottom_two = models.PositiveIntegerField(default=0)
    via_link = models.PositiveIntegerField(default=0)
    invited = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("daily answers roll-up")
        verbose_name_plural = _("daily answers roll-ups")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "survey", "dimension", "value"], name="response_daily_unique"
            ),
        ]
        indexes = [models.Index(fields=["dimension", "day"], name="response_daily_dim_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.survey_id} {self.dimension}={self.value}: {self.responses}"


class RollupState(models.Model):
    """One row: the roll-up holds every day up to ``complete_through``; later days are
    read live from the answers. Its row lock serialises roll-up refreshes."""

    complete_through = models.DateField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("roll-up state")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="rollup_state_single")]

    def __str__(self) -> str:
        return f"complete through {self.complete_through}"
