"""SMS backends: an interface like Django's mail backends, chosen by ``CAMPAIGNS_SMS_BACKEND``.

The default records the message (the delivery row is the record) and sends nothing; a real
gateway subclasses :class:`BaseSmsBackend` and implements :meth:`send`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from django.conf import settings
from django.utils.module_loading import import_string

# Messages the in-memory backend has "sent", like django.core.mail.outbox, for tests.
outbox: list[tuple[str, str]] = []


class SmsError(Exception):
    """The gateway refused or failed to take the message."""


class BaseSmsBackend(ABC):
    """Send one text message to one phone number (the interface a gateway implements)."""

    @abstractmethod
    def send(self, *, phone: str, text: str) -> str:
        """Send ``text`` to ``phone`` (digits with country code); return the gateway's id.

        Raise :class:`SmsError` when the gateway refuses it.
        """


class RecordingSmsBackend(BaseSmsBackend):
    """Default: keep the message in ``campaigns.sms.outbox`` and in the delivery row only."""

    def send(self, *, phone: str, text: str) -> str:
        outbox.append((phone, text))
        return f"recorded-{len(outbox)}"


def sms_backend_get() -> BaseSmsBackend:
    """Return the configured SMS backend."""
    path = getattr(settings, "CAMPAIGNS_SMS_BACKEND", "campaigns.sms.RecordingSmsBackend")
    return import_string(path)()
