"""Campaigns and segments for tests, built the way a manager would."""

from campaigns.models import Campaign, CampaignVariant, Segment


def segment_make(name="Everyone with e-mail", criteria=None, **kwargs) -> Segment:
    return Segment.objects.create(name=name, criteria=criteria or {"email_consent": "yes"},
                                  **kwargs)


def campaign_make(*, created_by, segment=None, kind=Campaign.Kind.NEWSLETTER, variants=("A",),
                  **kwargs) -> Campaign:
    campaign = Campaign.objects.create(
        name=kwargs.pop("name", "November news"), kind=kind, segment=segment,
        created_by=created_by, **kwargs,
    )
    for code in variants:
        CampaignVariant.objects.create(
            campaign=campaign, code=code, subject_en=f"{code}: hello {{{{ first_name }}}}",
            body_en="Dear {{ first_name }}, you have {{ balance }} points ({{ tier }}).",
            subject_ru=f"{code}: привет", body_ru="{{ first_name }}, у вас {{ balance }} баллов.",
        )
    return campaign
