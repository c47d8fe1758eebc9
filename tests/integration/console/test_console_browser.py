"""The console in a real headless Chromium (Debian's, driven by Playwright) against the app on a real port:
log in, the charts render, drain a node, a form without its CSRF token is refused, markup in a username stays
text, no page opens without a session, TOTP once enabled. Every page visited is saved as a screenshot
(tests/artifacts/console/, or CONSOLE_ARTIFACTS_DIR)."""

from __future__ import annotations

import re
import shutil

import pyotp
import pytest
from sqlalchemy import select

from control_api.models import AuditLog, Node

from .conftest import ARTIFACTS, HOSTILE

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()
    assert dialogs == [], f"a page opened a dialog: {dialogs}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, live_server, credentials, code: str = "") -> None:
    page.goto(f"{live_server.url}/admin/login")
    page.get_by_label("Username").fill(credentials.identifier)
    page.get_by_label("Password").fill(credentials.secret)
    if code:
        page.get_by_label(re.compile("Two-factor code")).fill(code)
    page.get_by_role("button", name="Log in").click()


def test_without_a_session_every_page_is_the_login(page, live_server):
    for path in ("/admin/", "/admin/nodes", "/admin/audit", "/admin/plans", "/admin/users"):
        page.goto(f"{live_server.url}{path}")
        assert page.url.startswith(f"{live_server.url}/admin/login")
        assert page.get_by_role("heading", name="Log in").is_visible()
    shot(page, "login")


def test_log_in_see_the_charts_and_drain_a_node(app, page, live_server, principals, shop):
    log_in(page, live_server, principals.admin)
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.get_by_role("heading", name="Overview").is_visible()
    charts = page.locator("figure.chart svg")
    assert charts.count() >= 6
    assert page.locator("figure.chart svg rect.bar").count() > 0
    drawn = page.locator("figure.chart svg path.line")
    assert drawn.count() > 0 and drawn.first.bounding_box()["width"] > 0
    assert page.locator(".tiles").get_by_text("Active configs").is_visible()
    shot(page, "overview")

    page.get_by_role("link", name="Nodes").click()
    row = page.locator(f"tr[data-node='{shop.node_name}']")
    assert row.locator("[data-field=status]").inner_text() == "active"
    assert row.locator("svg.spark path").count() == 2  # CPU and bandwidth sparklines
    shot(page, "nodes")
    row.get_by_role("button", name="Drain").click()
    page.wait_for_url(re.compile(r"/admin/nodes\?done=drain"))
    assert page.get_by_role("status").inner_text().startswith("Draining")
    assert page.locator(f"tr[data-node='{shop.node_name}'] [data-field=status]").inner_text() == "draining"
    shot(page, "nodes-drained")
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.get(Node, shop.node_id).status == "draining"
        row = session.scalar(select(AuditLog).where(AuditLog.action == "node.drain"))
        assert (row.actor_type, row.actor_id) == ("admin", str(principals.admin.principal_id))

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action starts with").fill("node.drain")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.audit tbody tr").count() == 1
    shot(page, "audit")
    page.get_by_role("link", name="Plans").click()
    assert page.get_by_role("link", name="Abroad 30 days").first.is_visible()
    shot(page, "plans")


def test_a_form_posted_without_its_csrf_token_is_refused(app, page, live_server, principals, shop):
    log_in(page, live_server, principals.admin)
    page.wait_for_url(f"{live_server.url}/admin/")
    # The browser's own request context carries the session cookie; only the token is missing or wrong.
    for form in ({}, {"csrf_token": "f" * 64}):
        response = page.request.post(f"{live_server.url}/admin/nodes/{shop.node_id}/drain", form=form)
        assert response.status == 400
        assert "security token" in response.text()
    page.goto(f"{live_server.url}/admin/nodes")
    assert page.locator(f"tr[data-node='{shop.node_name}'] [data-field=status]").inner_text() == "active"
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.scalar(select(AuditLog).where(AuditLog.action == "node.drain")) is None


def test_a_username_made_of_markup_shows_as_text(page, live_server, principals, shop):
    log_in(page, live_server, principals.admin)
    page.wait_for_url(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Telegram id or username").fill("7003")
    page.get_by_role("button", name="Search").click()
    link = page.get_by_role("link", name=HOSTILE)
    assert link.inner_text() == HOSTILE
    shot(page, "users")
    link.click()
    assert page.locator("h1 .username").inner_text() == HOSTILE
    shot(page, "user")
    page.goto(f"{live_server.url}/admin/audit?action=user.create")
    assert HOSTILE in page.locator("table.audit").inner_text()
    assert page.dialogs == []  # and the fixture checks again at the end


def test_totp_once_enabled_is_required(browser, page, live_server, principals, shop):
    log_in(page, live_server, principals.admin)
    page.wait_for_url(f"{live_server.url}/admin/")
    page.get_by_role("link", name="alice").click()
    page.get_by_role("button", name="Set up two-factor").click()
    secret = page.locator("#totp-secret").inner_text()
    assert page.locator("img.qr").evaluate("img => img.naturalWidth") > 0
    shot(page, "account-totp-setup")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor").click()
    assert "Two-factor is on" in page.get_by_role("status").inner_text()
    shot(page, "account-totp-on")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile("/admin/login"))

    log_in(page, live_server, principals.admin)  # password only
    assert page.get_by_role("alert").inner_text() == "Invalid credentials."
    assert page.url.startswith(f"{live_server.url}/admin/login")
    shot(page, "login-refused")
    import time

    log_in(page, live_server, principals.admin, code=totp.at(time.time() + 30))
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.get_by_role("heading", name="Overview").is_visible()


def test_the_console_fits_a_phone(browser, live_server, principals, shop):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        log_in(page, live_server, principals.admin)
        page.wait_for_url(f"{live_server.url}/admin/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the overview scrolls sideways on a phone ({width}px)"
        shot(page, "overview-phone")
        page.goto(f"{live_server.url}/admin/nodes")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls inside its box
        shot(page, "nodes-phone")
    finally:
        context.close()
