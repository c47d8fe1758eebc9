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

from control_api.models import AuditLog, Node, Payment, User

from .conftest import ARTIFACTS, HOSTILE, pending_payment, png

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


def test_approve_and_reject_with_ban_from_the_queue_seen_live_by_a_second_session(
    app, browser, page, live_server, client, principals, shop
):
    approve_id = pending_payment(client, principals, shop, 8001, "first_customer", png(), "a")
    reject_id = pending_payment(client, principals, shop, 8002, "second_customer", png(160, 200), "b")
    again_id = pending_payment(
        client, principals, shop, 8003, "third_customer", png(), "c"
    )  # the first one's receipt again
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    try:
        for each in (page, other):
            log_in(each, live_server, principals.admin)
            each.wait_for_url(f"{live_server.url}/admin/")
            each.get_by_role("link", name="Payments").click()
            each.wait_for_url(f"{live_server.url}/admin/payments")
        first = page.locator(f"article[data-payment-id='{approve_id}']")
        image = first.locator("img.proof-img")
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.evaluate("img => img.naturalWidth") == 180
        assert (
            page.locator(f"article[data-payment-id='{again_id}'] p.dup")
            .inner_text()
            .startswith(f"Same receipt as payment #{approve_id}")
        )
        assert first.locator("[data-field=status]").inner_text() == "pending"
        shot(page, "payments")

        first.get_by_role("button", name="Approve").click()
        page.wait_for_url(re.compile(r"/admin/payments\?done=approved"))
        assert page.get_by_role("status").inner_text() == "Payment approved."
        assert page.locator(f"article[data-payment-id='{approve_id}'] [data-field=status]").inner_text() == (
            "approved by alice"
        )
        shot(page, "payments-approved")

        # The second session never reloads: the poller marks the decision and disables the buttons.
        seen = other.locator(f"article[data-payment-id='{approve_id}']")
        seen.locator("[data-field=status]").filter(has_text="approved by alice").wait_for(timeout=15_000)
        assert seen.get_by_role("button", name="Approve").is_disabled()
        assert seen.get_by_role("button", name="Reject").is_disabled()
        assert (
            other.locator(f"article[data-payment-id='{reject_id}']").get_by_role("button", name="Reject").is_enabled()
        )
        shot(other, "payments-second-session")

        second = page.locator(f"article[data-payment-id='{reject_id}']")
        second.get_by_label("Reason", exact=True).select_option("fake_receipt")
        second.get_by_label("Ban the customer").check()
        second.get_by_role("button", name="Reject").click()
        page.wait_for_url(re.compile(r"/admin/payments\?done=rejected_banned"))
        assert page.get_by_role("status").inner_text() == "Payment rejected and the customer banned."
        shot(page, "payments-rejected")
        other.locator(f"article[data-payment-id='{reject_id}'] [data-field=status]").filter(
            has_text="rejected by alice"
        ).wait_for(timeout=15_000)
        shot(other, "payments-second-session-rejected")

        # The second session's stale form is refused readably, never a second decision.
        other.locator(f"article[data-payment-id='{reject_id}'] button").evaluate_all(
            "buttons => buttons.forEach(b => { b.disabled = false; })"
        )
        other.locator(f"article[data-payment-id='{reject_id}']").get_by_role("button", name="Reject").click()
        assert f"Payment {reject_id} is already rejected by alice." in other.get_by_role("alert").inner_text()
    finally:
        other.context.close()
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.get(Payment, approve_id).status == "approved"
        rejected = session.get(Payment, reject_id)
        assert (rejected.status, rejected.review_reason_code) == ("rejected", "fake_receipt")
        assert session.get(User, rejected.user_id).is_banned
        rows = session.scalars(select(AuditLog).where(AuditLog.action.in_(("payment.approve", "payment.reject"))))
        decided = {(row.action, row.details["payment_id"], row.actor_type) for row in rows}
        assert ("payment.approve", approve_id, "admin") in decided and ("payment.reject", reject_id, "admin") in decided
