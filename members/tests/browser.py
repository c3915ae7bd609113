"""What every browser test does first: log in to the back-office as a test user."""

from playwright.sync_api import Page, expect

PASSWORD = "pw-for-tests-1"  # the root conftest's role_user default


def log_in(page: Page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log ``page`` in through the login form and wait for the user's own header."""
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form [type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)
