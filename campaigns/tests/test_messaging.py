"""Consent, unsubscribe, frequency cap and idempotency of message_send; the unsubscribe page."""

import re

import pytest
from django.core import mail

from campaigns import sms
from campaigns.messaging import unsubscribe_token_make
from campaigns.models import MessageDelivery, Unsubscribe
from campaigns.selectors import campaign_settings_get
from campaigns.services import member_unsubscribe, message_send
from members.models import Member
from members.tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def send(member, key, channel="email", **kwargs):
    return message_send(member_id=member.id, channel=channel, subject="Hello",
                        text="Hi there", purpose="campaign", idempotency_key=key, **kwargs)


def test_email_is_sent_once_per_key_with_a_working_unsubscribe_link(consenting_member, client):
    first = send(consenting_member, "k1")
    again = send(consenting_member, "k1")
    assert first.pk == again.pk and first.status == MessageDelivery.Status.SENT
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["anna@example.com"]
    url = re.search(r"https?://\S+/messages/unsubscribe/\S+/", message.body).group(0)
    assert message.extra_headers["List-Unsubscribe"] == f"<{url}>"
    path = url.split("localhost:8000", 1)[-1] if "localhost:8000" in url else \
        "/" + url.split("/", 3)[3]

    page = client.get(path)  # no login needed; GET only asks
    assert page.status_code == 200
    assert b"Yes, unsubscribe me" in page.content
    assert not Unsubscribe.objects.exists()
    done = client.post(path)
    assert b"You are unsubscribed" in done.content
    consenting_member.refresh_from_db()
    assert not consenting_member.email_consent
    assert Unsubscribe.objects.get().delivery_id == first.id

    later = send(consenting_member, "k2")
    assert later.status == MessageDelivery.Status.SKIPPED
    assert later.skip_reason == MessageDelivery.SkipReason.UNSUBSCRIBED
    assert len(mail.outbox) == 1


def test_forged_unsubscribe_token_is_refused(client, consenting_member):
    token = unsubscribe_token_make(member_id=consenting_member.id, channel="email",
                                   delivery_id=None)
    response = client.post(f"/messages/unsubscribe/{token[:-2]}xx/")
    assert response.status_code == 404
    consenting_member.refresh_from_db()
    assert consenting_member.email_consent


def test_no_message_without_consent_address_or_to_a_blocked_member(db):
    no_consent = MemberFactory(email_consent=False)
    no_address = MemberFactory(email="", email_consent=True)
    blocked = MemberFactory(email_consent=True, status=Member.Status.BLOCKED)
    no_sms = MemberFactory(email_consent=True, sms_consent=False)
    reasons = [send(no_consent, "a").skip_reason, send(no_address, "b").skip_reason,
               send(blocked, "c").skip_reason, send(no_sms, "d", channel="sms").skip_reason]
    assert reasons == ["no_consent", "no_address", "inactive", "no_consent"]
    assert mail.outbox == []
    assert set(MessageDelivery.objects.values_list("status", flat=True)) == {"skipped"}


def test_frequency_cap_stops_the_fourth_message_of_the_week(consenting_member):
    settings_row = campaign_settings_get()
    settings_row.frequency_cap_per_week = 3
    settings_row.save()
    statuses = [send(consenting_member, f"cap{i}").status for i in range(4)]
    assert statuses == ["sent", "sent", "sent", "skipped"]
    assert MessageDelivery.objects.get(idempotency_key="cap3").skip_reason == "frequency_cap"
    # A service message (not capped) still goes, and does not count.
    assert send(consenting_member, "svc", respect_frequency_cap=False).status == "sent"
    assert len(mail.outbox) == 4


def test_sms_goes_through_the_recording_backend(consenting_member):
    sms.outbox.clear()
    delivery = send(consenting_member, "sms1", channel="sms")
    assert delivery.status == "sent" and delivery.address == "79001112233"
    assert sms.outbox == [("79001112233", "Hi there")]
    member_unsubscribe(member_id=consenting_member.id, channel="sms", source="staff")
    assert send(consenting_member, "sms2", channel="sms").skip_reason == "unsubscribed"
