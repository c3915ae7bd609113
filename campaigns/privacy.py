"""The campaigns' part of a member's erasure: the copies of messages sent to them.

A delivery keeps the address it went to and the text as sent (with the member's name
filled in). Erasure blanks those and keeps the row: the campaign's counts, conversions
and frequency cap still hold. The export needs nothing special: the generic section of
:func:`members.privacy.member_data_export` holds every delivery row.
"""

from campaigns.models import MessageDelivery


def member_messages_erase(member_id: int) -> None:
    """Blank the address, subject and text of every message sent to the member."""
    MessageDelivery.objects.filter(member_id=member_id).update(address="", subject="", text="")
