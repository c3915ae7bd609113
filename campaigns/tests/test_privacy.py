"""Erasing a member blanks the copies of the messages sent to them, keeps the counts."""

import pytest
from django.contrib.auth.models import Permission

from campaigns.messaging import message_send
from campaigns.models import MessageDelivery
from members.privacy import member_erase

pytestmark = pytest.mark.django_db


def test_erasure_blanks_address_subject_and_text_of_sent_messages(
    consenting_member, admin_user, mailoutbox
):
    message_send(member_id=consenting_member.pk, channel="email", subject="Hello Anna",
                 text="Dear Anna, your balance is 100.", purpose="test",
                 idempotency_key="privacy-1")
    assert Permission.objects.filter(codename="erase_member").exists()

    member_erase(member_id=consenting_member.pk, reason="Request #1", actor=admin_user)

    delivery = MessageDelivery.objects.get(member=consenting_member)
    assert (delivery.address, delivery.subject, delivery.text) == ("", "", "")
    assert delivery.status == MessageDelivery.Status.SENT  # still counted as sent
