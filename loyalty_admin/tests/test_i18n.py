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


SOURCE_DIRS = ("loyalty_admin", "members", "rewards", "campaigns", "surveys", "templates")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_catalogue_holds_every_string_the_code_shows(language, tmp_path):
    """Every translatable string in the code and templates has a translation.

    ``makemessages`` runs on a copy of the sources, so the committed catalogue is compared
    with what the code asks for today; ``msgcmp`` names each string that is missing.
    """
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*"):
            if path.suffix in {".py", ".html", ".txt"} and "__pycache__" not in path.parts:
                target = tmp_path / path.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    (tmp_path / "manage.py").write_bytes((ROOT / "manage.py").read_bytes())
    (tmp_path / "locale").mkdir()
    made = subprocess.run(  # noqa: S603 - Django's own extractor on a copy of our sources
        ["python", "manage.py", "makemessages", "-l", language, "-v", "0"],  # noqa: S607
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"PATH": str(Path(__import__("sys").executable).parent) + ":/usr/bin:/bin",
             "DJANGO_SETTINGS_MODULE": "loyalty_admin.settings.test",
             "DATABASE_URL": "sqlite:///:memory:"},
    )
    assert made.returncode == 0, made.stderr
    wanted = tmp_path / "locale" / language / "LC_MESSAGES" / "django.po"
    catalogue = ROOT / "locale" / language / "LC_MESSAGES" / "django.po"
    compared = subprocess.run(  # noqa: S603 - gettext's own comparison
        ["msgcmp", str(catalogue), str(wanted)],  # noqa: S607
        capture_output=True, text=True, check=False,
    )
    assert compared.returncode == 0, (
        f"Strings missing from locale/{language} (run `make messages` and translate):\n"
        + compared.stderr[:4000]
    )
