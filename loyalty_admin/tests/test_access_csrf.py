"""CSRF: a POST without the form's token is refused on every page of the project.

The pages are the URL walk's (generated from the resolver), posted to as a superuser,
who could otherwise do anything there: admin forms, list actions, custom actions, the
dashboards, logout. Only the one-click unsubscribe link is exempt (RFC 8058: the mail
provider posts it without a cookie; its signed token is the credential).
"""

import io
import logging

import pytest
from django.test import Client

from loyalty_admin.tests.urlwalk import demo_data_load, pages

CSRF_EXEMPT = {"campaigns:unsubscribe"}


@pytest.fixture
def csrf_client(db, django_user_model):
    demo_data_load(io.StringIO())
    root = django_user_model.objects.create_superuser("csrf-root", "r@example.com", "pw-1-root-x")
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(root)
    return client


def test_every_page_refuses_a_post_without_the_csrf_token(csrf_client):
    logging.getLogger("django.security.csrf").setLevel(logging.ERROR)
    walk, _unfilled, _uncovered = pages()
    accepted = []
    for page in walk:
        response = csrf_client.post(page.url, {"action": "delete_selected", "_selected_action": "1",
                                               "post": "yes", "reason": "csrf"})
        refused = response.status_code == 403 and b"CSRF" in response.content
        if not refused and page.name not in CSRF_EXEMPT:
            accepted.append(f"{page.url} ({page.name}): {response.status_code}")
    assert not accepted, "POST without a CSRF token accepted:\n" + "\n".join(accepted)


def test_the_same_post_with_the_token_goes_through(csrf_client):
    page = csrf_client.get("/admin/members/store/add/")
    token = page.cookies["csrftoken"].value
    response = csrf_client.post("/admin/members/store/add/", {
        "csrfmiddlewaretoken": token, "code": "CSRF-1", "name": "With a token",
    })
    assert response.status_code == 302
