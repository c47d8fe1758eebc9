"""The webhooks pages and the user page's subscription QR over the Flask test client against the real PostgreSQL +
Redis app: endpoints listed without their secrets (nor their URLs' queries), the delivery log, Retry through the
API's service (status back to pending, the job queued on RQ by the after-commit hook, the audit row with the admin
as actor), CSRF, a delivered delivery refused, and no page or image without a console session."""

from __future__ import annotations

import redis
from rq import Queue
from sqlalchemy import select

from control_api.jobs.queue import WEBHOOK_QUEUE, webhook_job_id
from control_api.models import AuditLog, WebhookDelivery

from .conftest import console_login, csrf_of, pending_payment, png

SECRET = "a-receiver-shared-secret-0123456789"
URL = "https://hooks.example.test/rayfleet/in?token=receiver-token-42"


def db(app):
    session = app.extensions["rayfleet.db"].session()
    session.expire_all()
    return session


def register(client, principals, description: str = "<b>books</b>") -> dict:
    body = {"url": URL, "events": ["payment.created"], "secret": SECRET, "description": description}
    created = client.post("/api/v1/webhooks", json=body, headers=principals.admin.headers)
    assert created.status_code == 201, created.json
    return created.json


def failed_delivery(app, client, principals, shop, hook_id: int) -> int:
    """A payment.created delivery to HOOK_ID, marked failed as three refused attempts leave it."""
    pending_payment(client, principals, shop, 8101, "payer", png(), "w")
    session = db(app)
    delivery = session.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id))
    delivery.status, delivery.attempts, delivery.next_attempt_at = "failed", 3, None
    delivery.last_status_code, delivery.last_error = 500, "HTTP 500"
    session.commit()
    return delivery.id


def test_the_webhooks_page_lists_endpoints_without_secret_or_query(app, client, principals, shop):
    hook = register(client, principals)
    console_login(client, principals.admin)
    page = client.get("/admin/webhooks")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'data-webhook-id="{hook["id"]}"' in html
    assert "https://hooks.example.test/rayfleet/in?…" in html and "payment.created" in html
    assert SECRET not in html and "receiver-token-42" not in html
    assert "&lt;b&gt;books&lt;/b&gt;" in html and "<b>books</b>" not in html
    assert 'href="/admin/webhooks" aria-current="page">Webhooks</a>' in html
    assert f'href="/admin/webhooks/{hook["id"]}"' in html


def test_retry_of_a_failed_delivery_goes_through_the_api_service(app, client, principals, shop, redis_url):
    hook = register(client, principals)
    delivery_id = failed_delivery(app, client, principals, shop, hook["id"])
    queue = Queue(WEBHOOK_QUEUE, connection=redis.Redis.from_url(redis_url))
    queue.empty()  # the creation's job; the retry must queue it again
    redis.Redis.from_url(redis_url).delete(f"rq:job:{webhook_job_id(delivery_id, 0)}")
    console_login(client, principals.admin)
    page = client.get(f"/admin/webhooks/{hook['id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and SECRET not in html and "receiver-token-42" not in html
    assert f'data-delivery-id="{delivery_id}" data-status="failed"' in html
    assert "HTTP 500" in html and "<td>500</td>" in html and "<td>3</td>" in html
    retry = f"/admin/webhooks/{hook['id']}/deliveries/{delivery_id}/retry"
    assert f'action="{retry}"' in html

    refused = client.post(retry, data={"csrf_token": "0" * 64})
    assert refused.status_code == 400
    assert db(app).get(WebhookDelivery, delivery_id).status == "failed"
    assert webhook_job_id(delivery_id, 0) not in queue.job_ids

    done = client.post(retry, data={"csrf_token": csrf_of(html)})
    assert done.status_code == 302 and done.headers["Location"] == f"/admin/webhooks/{hook['id']}?done=retried"
    delivery = db(app).get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert webhook_job_id(delivery_id, 0) in queue.job_ids  # queued after the commit, as the API's retry is
    row = db(app).scalar(
        select(AuditLog).where(
            AuditLog.action == "webhook.retry", AuditLog.details["delivery_id"].as_integer() == delivery_id
        )
    )
    assert (row.actor_type, row.actor_id) == ("admin", str(principals.admin.principal_id))
    assert row.details["was"] == "failed"
    after = client.get(f"/admin/webhooks/{hook['id']}?done=retried").get_data(as_text=True)
    assert f'data-delivery-id="{delivery_id}" data-status="pending"' in after and "queued again" in after

    session = db(app)
    session.get(WebhookDelivery, delivery_id).status = "delivered"
    session.commit()
    again = client.post(retry, data={"csrf_token": csrf_of(html)})
    assert again.status_code == 409 and f"Delivery {delivery_id} was delivered already." in again.get_data(as_text=True)
    assert f'action="{retry}"' not in again.get_data(as_text=True)  # no Retry on a delivered one
    assert (
        client.post(
            f"/admin/webhooks/{hook['id']}/deliveries/999999/retry", data={"csrf_token": csrf_of(html)}
        ).status_code
        == 404
    )


def test_webhook_pages_and_the_qr_need_a_session(app, client, principals, shop):
    hook = register(client, principals)
    for path in (
        "/admin/webhooks",
        f"/admin/webhooks/{hook['id']}",
        f"/admin/users/{shop.buyer_id}/subscription/qr.png",
    ):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login"), path
    anonymous = client.post(f"/admin/webhooks/{hook['id']}/deliveries/1/retry", data={})
    assert anonymous.status_code == 400  # no session, so no form token: refused before the view


def test_the_user_page_shows_the_subscription_qr_the_api_serves(app, client, principals, shop):
    console_login(client, principals.admin)
    html = client.get(f"/admin/users/{shop.buyer_id}").get_data(as_text=True)
    src = f'src="/admin/users/{shop.buyer_id}/subscription/qr.png"'
    assert src in html
    qr = client.get(f"/admin/users/{shop.buyer_id}/subscription/qr.png")
    assert qr.status_code == 200 and qr.mimetype == "image/png" and qr.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert qr.headers["Cache-Control"] == "no-store"
    api = client.get(f"/api/v1/users/{shop.buyer_id}/subscription/qr.png", headers=principals.admin.headers)
    assert api.status_code == 200 and api.data == qr.data  # the same PNG
    assert client.get("/admin/users/999999/subscription/qr.png").status_code == 404
