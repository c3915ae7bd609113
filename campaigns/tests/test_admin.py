"""Admin pages of campaigns: roles, fixed query counts, the live count, actions, CSV."""

import pytest
from django.urls import reverse

from campaigns.models import Campaign, MessageDelivery, Segment
from campaigns.rfm import rfm_compute
from campaigns.services import campaign_approve, campaign_submit, message_send
from campaigns.tests.factories import campaign_make, segment_make
from members.tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

PAGES = [
    "admin:campaigns_campaign_changelist", "admin:campaigns_campaign_add",
    "admin:campaigns_segment_changelist", "admin:campaigns_segment_add",
    "admin:campaigns_memberrfm_changelist", "admin:campaigns_messagedelivery_changelist",
    "admin:campaigns_campaignrecipient_changelist", "admin:campaigns_unsubscribe_changelist",
]


@pytest.fixture
def scored(buy):
    members = [MemberFactory(city="Moscow", email_consent=True) for _ in range(6)]
    for i, member in enumerate(members):
        buy(member, 100 * (i + 1), i + 1)
    rfm_compute()
    return members


def test_manager_sees_every_page_and_analyst_cannot_add(client, manager, role_user, scored):
    client.force_login(manager)
    for name in PAGES:
        assert client.get(reverse(name)).status_code == 200, name
    analyst = role_user("Analyst")
    client.force_login(analyst)
    assert client.get(reverse("admin:campaigns_campaign_changelist")).status_code == 200
    assert client.get(reverse("admin:campaigns_campaign_add")).status_code == 403
    assert client.get(reverse("admin:campaigns_segment_add")).status_code == 403


def test_support_sees_no_campaigns_but_the_member_panels(client, role_user, campaign_roles,
                                                         scored):
    support = role_user("Support")
    client.force_login(support)
    assert client.get(reverse("admin:campaigns_campaign_changelist")).status_code == 403
    member = scored[0]
    message_send(member_id=member.id, channel="email", subject="Autumn news", text="Hi",
                 purpose="campaign", idempotency_key="panel-1")
    page = client.get(reverse("admin:members_member_change", args=[member.id]))
    assert page.status_code == 200
    assert b'id="member-rfm"' in page.content and b"Autumn news" in page.content


def test_member_page_panels_run_fixed_queries(client, manager, scored,
                                              django_assert_max_num_queries):
    member = scored[0]
    url = reverse("admin:members_member_change", args=[member.id])
    client.force_login(manager)
    client.get(url)
    with django_assert_max_num_queries(60) as few:
        client.get(url)
    for i in range(15):
        message_send(member_id=member.id, channel="email", subject=f"S{i}", text="x",
                     purpose="campaign", idempotency_key=f"many-{i}",
                     respect_frequency_cap=False)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url)


def test_live_count_returns_count_and_sample_with_one_count_query(client, manager, scored,
                                                                  django_assert_max_num_queries):
    client.force_login(manager)
    data = {"name": "", "kind": "dynamic", "cities": "Moscow", "email_consent": "yes"}
    with django_assert_max_num_queries(12):
        response = client.post(reverse("admin:campaigns_segment_preview"), data)
    assert response.status_code == 200
    assert response.json()["count"] == 6
    assert scored[-1].card_number in response.json()["html"]
    bad = client.post(reverse("admin:campaigns_segment_preview"),
                      {"kind": "dynamic", "age_min": "50", "age_max": "20"})
    assert bad.status_code == 400
    assert "Age: at most: Must not be below the lower bound." in str(bad.json()["errors"])


def test_segment_saved_from_the_form_stores_its_criteria(client, manager, scored):
    client.force_login(manager)
    response = client.post(reverse("admin:campaigns_segment_add"), {
        "name": "Moscow champions", "description": "", "kind": "dynamic",
        "cities": "Moscow", "rfm_segments": ["champions", "loyal"],
    })
    assert response.status_code == 302
    segment = Segment.objects.get(name="Moscow champions")
    assert segment.criteria == {"cities": ["Moscow"], "rfm_segments": ["champions", "loyal"]}
    assert segment.created_by == manager and segment.last_count is not None


def test_static_segment_upload_with_bad_rows_saves_nothing(client, manager, scored):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(manager)
    upload = SimpleUploadedFile("cards.csv", f"{scored[0].card_number}\n12345\n".encode())
    response = client.post(reverse("admin:campaigns_segment_add"), {
        "name": "List", "kind": "static", "card_list": upload,
    })
    assert response.status_code == 200
    assert "Row 2: no member has this card number" in response.content.decode()
    assert not Segment.objects.exists()


def test_life_cycle_buttons_and_results_csv(client, manager, second_manager, scored,
                                            django_capture_on_commit_callbacks):
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=50)
    client.force_login(manager)
    action = "admin:campaigns_campaign_action"
    client.post(reverse(action, args=[campaign.id, "submit"]))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.id]))
    assert b"Waiting for another person" in page.content and b"campaign-approve" not in \
        page.content
    client.force_login(second_manager)
    client.post(reverse(action, args=[campaign.id, "approve"]))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse(action, args=[campaign.id, "launch"]))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.FINISHED
    assert MessageDelivery.objects.filter(campaign=campaign).count() == \
        campaign.recipients.filter(is_control=False).count()
    results = client.get(reverse("admin:campaigns_campaign_results", args=[campaign.id]))
    assert results.status_code == 200 and b"Control" in results.content
    csv_response = client.get(reverse("admin:campaigns_campaign_results_csv",
                                      args=[campaign.id]))
    lines = csv_response.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Group,Recipients,Reached,Converted")
    assert len(lines) == 3  # variant A and control
    preview = client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.id]),
                         {"member": scored[0].card_number,
                          "variant": campaign.variants.get().id})
    # The member's profile language is Russian (the default), so the Russian text shows.
    assert f"{scored[0].first_name}, у вас 0 баллов.".encode() in preview.content


def test_analyst_cannot_move_a_campaign(client, manager, role_user, scored):
    campaign = campaign_make(created_by=manager, segment=segment_make())
    campaign_submit(campaign_id=campaign.id, actor=manager)
    client.force_login(role_user("Analyst"))
    response = client.post(reverse("admin:campaigns_campaign_action",
                                   args=[campaign.id, "approve"]))
    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert campaign_approve  # imported for the service-level maker-checker test elsewhere
