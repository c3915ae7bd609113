"""Both languages are complete and the back-office speaks the one a person chooses."""

import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_catalogue_has_no_untranslated_or_fuzzy_entries(language):
    catalogue = ROOT / "locale" / language / "LC_MESSAGES" / "django.po"
    result = subprocess.run(  # noqa: S603 - gettext's own checker on our file
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(catalogue)],  # noqa: S607
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr


@pytest.mark.django_db
def test_language_switch_turns_the_back_office_russian(client, support_user):
    client.force_login(support_user)
    response = client.post(reverse("set_language"), {"language": "ru", "next": "/admin/"})
    assert response.status_code == 302
    page = client.get(reverse("admin:index")).content.decode()
    assert "Найти участника" in page
    assert "Find a member" not in page
    client.post(reverse("set_language"), {"language": "en", "next": "/admin/"})
    assert "Find a member" in client.get(reverse("admin:index")).content.decode()
