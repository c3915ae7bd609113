"""Sending one message to one member: consent, unsubscribes, the weekly cap, the record.

:func:`campaigns.services.message_send` is the public entry point (re-exported there);
this module keeps its pieces together: the signed unsubscribe token and the refusal rules.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from campaigns.models import MessageDelivery, Unsubscribe
from campaigns.selectors import campaign_settings_get
from campaigns.sms import SmsError, sms_backend_get
from members.models import Member

_UNSUBSCRIBE_SALT = "campaigns.unsubscribe"
_CAP_DAYS = 7


def unsubscribe_token_make(*, member_id: int, channel: str, delivery_id: int | None) -> str:
    """Return the signed token of an unsubscribe link (no expiry: old e-mails keep working)."""
    return signing.dumps(
        {"m": member_id, "c": channel, "d": delivery_id}, salt=_UNSUBSCRIBE_SALT, compress=True
    )


def unsubscribe_token_read(token: str) -> dict | None:
    """Return ``{"m": member id, "c": channel, "d": delivery id}`` or None if forged."""
    try:
        data = signing.loads(token, salt=_UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or "m" not in data or data.get("c") not in ("email", "sms"):
        return None
    return data


def unsubscribe_url(token: str) -> str:
    """Return the absolute URL of the public unsubscribe page for ``token``."""
    base = getattr(settings, "PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")
    return base + reverse("campaigns:unsubscribe", args=[token])


_cap_cache: dict[str, float] = {}


def _frequency_cap() -> int:
    """Return the weekly cap, read at most every 30 s (a send reads it per message)."""
    now = time.monotonic()
    if now - _cap_cache.get("at", -1e9) > 30:
        _cap_cache.update(at=now, cap=campaign_settings_get().frequency_cap_per_week)
    return int(_cap_cache["cap"])


def _refusal(*, member: Member, channel: str, respect_frequency_cap: bool, now) -> str:
    """Return why ``member`` must not get a message on ``channel`` now ("" when it may)."""
    reasons = MessageDelivery.SkipReason
    if member.status != Member.Status.ACTIVE:
        return reasons.INACTIVE
    if Unsubscribe.objects.filter(member_id=member.id, channel=channel).exists():
        return reasons.UNSUBSCRIBED
    consent = member.email_consent if channel == MessageDelivery.Channel.EMAIL else \
        member.sms_consent
    if not consent:
        return reasons.NO_CONSENT
    address = member.email if channel == MessageDelivery.Channel.EMAIL else member.phone
    if not address:
        return reasons.NO_ADDRESS
    if respect_frequency_cap:
        cap = _frequency_cap()
        if cap:
            recent = MessageDelivery.objects.filter(
                member_id=member.id,
                counts_to_cap=True,
                status__in=(MessageDelivery.Status.SENT, MessageDelivery.Status.SENDING),
                created_at__gte=now - timedelta(days=_CAP_DAYS),
            ).count()
            if recent >= cap:
                return reasons.FREQUENCY_CAP
    return ""


def _email_deliver(*, delivery: MessageDelivery, member: Member, html: str, connection) -> None:
    """Send the e-mail of ``delivery`` with its unsubscribe link in text, HTML and headers."""
    token = unsubscribe_token_make(
        member_id=member.id, channel=delivery.channel, delivery_id=delivery.id
    )
    url = unsubscribe_url(token)
    with translation.override(member.language or settings.LANGUAGE_CODE):
        footer = _("To stop receiving these e-mails, unsubscribe: %(url)s") % {"url": url}
        link_text = _("Unsubscribe")
    message = EmailMultiAlternatives(
        subject=delivery.subject,
        body=f"{delivery.text}\n\n--\n{footer}\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.address],
        headers={
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Loyalty-Delivery": str(delivery.id),
        },
        connection=connection,
    )
    if html:
        message.attach_alternative(
            f'{html}<p style="font-size:12px;color:#666"><a href="{escape(url)}">'
            f"{escape(link_text)}</a></p>",
            "text/html",
        )
    message.send(fail_silently=False)


def message_send(
    *,
    member_id: int,
    channel: str,
    subject: str,
    text: str,
    html: str = "",
    purpose: str,
    idempotency_key: str,
    campaign_id: int | None = None,
    actor=None,
    respect_frequency_cap: bool = True,
    connection=None,
) -> MessageDelivery:
    """Send one message to one member and record it; return its :class:`MessageDelivery`.

    A key already used returns that row and sends nothing. A message the member must not
    get (blocked, unsubscribed, no consent, no address, over the weekly cap when
    ``respect_frequency_cap``) is recorded as ``skipped`` with the reason, not raised.
    E-mails carry a signed unsubscribe link; SMS go through the configured SMS backend.

    The row is committed as ``sending`` before the message leaves and marked ``sent``
    after, so a worker killed in between never sends it again (at most once); such a row
    stays ``sending`` for a person to look at.
    """
    if channel not in MessageDelivery.Channel.values:
        raise ValueError(f"Unknown channel {channel!r}; use 'email' or 'sms'.")
    now = timezone.now()
    try:
        with transaction.atomic():
            # The member row lock serialises two sends to one member, so the weekly cap
            # cannot be passed by both of two messages at the same moment.
            member = Member.objects.select_for_update().get(id=member_id)
            existing = MessageDelivery.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
            reason = _refusal(
                member=member, channel=channel, respect_frequency_cap=respect_frequency_cap,
                now=now,
            )
            address = member.email if channel == MessageDelivery.Channel.EMAIL else member.phone
            delivery = MessageDelivery.objects.create(
                member_id=member_id,
                channel=channel,
                purpose=purpose[:20],
                campaign_id=campaign_id,
                address=address or "",
                subject=subject[:200],
                text=text,
                status=MessageDelivery.Status.SKIPPED if reason else
                MessageDelivery.Status.SENDING,
                skip_reason=reason,
                counts_to_cap=respect_frequency_cap,
                idempotency_key=idempotency_key,
                actor=actor,
                created_at=now,
            )
    except IntegrityError:
        # Another worker recorded the same key first: theirs is the one delivery.
        return MessageDelivery.objects.get(idempotency_key=idempotency_key)
    if reason:
        return delivery
    try:
        if channel == MessageDelivery.Channel.EMAIL:
            _email_deliver(delivery=delivery, member=member, html=html, connection=connection)
        else:
            sms_backend_get().send(phone=delivery.address, text=text)
    except (SmsError, OSError) as error:
        delivery.status = MessageDelivery.Status.FAILED
        delivery.error = str(error)[:500]
        delivery.save(update_fields=["status", "error"])
        return delivery
    delivery.status = MessageDelivery.Status.SENT
    delivery.sent_at = timezone.now()
    delivery.save(update_fields=["status", "sent_at"])
    return delivery


def member_unsubscribe(*, member_id: int, channel: str, delivery_id: int | None = None,
                       source: str = "link", actor=None) -> Unsubscribe:
    """Opt ``member_id`` out of ``channel`` and withdraw that consent; safe to repeat."""
    with transaction.atomic():
        member = Member.objects.select_for_update().get(id=member_id)
        unsubscribe, _created = Unsubscribe.objects.get_or_create(
            member_id=member_id, channel=channel,
            defaults={
                "source": source,
                "delivery_id": delivery_id
                if delivery_id and MessageDelivery.objects.filter(id=delivery_id).exists()
                else None,
            },
        )
        field = "email_consent" if channel == MessageDelivery.Channel.EMAIL else "sms_consent"
        if getattr(member, field):
            # A narrow update, not member_save: an old profile that no longer passes
            # validation (say, a phone in a legacy format) must not block an opt-out.
            Member.objects.filter(id=member_id).update(
                **{field: False, f"{field}_at": timezone.now()}
            )
    return unsubscribe
