"""The control API over HTTP, with the bot's service credentials: log in, re-log in on 401, map errors."""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API answered with an error: status, its machine code and human message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class ApiUnavailable(Exception):
    """The API could not be reached, timed out or failed (5xx): the caller should ask the user to retry."""


class ApiRateLimited(ApiUnavailable):
    """429: the API refuses for a while (RETRY_AFTER seconds), e.g. after too many refused discount codes."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ApiClient:
    def __init__(self, base_url: str, client_id: str, client_secret: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id, self._client_secret = client_id, client_secret
        self._timeout = timeout
        self._token = ""
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            return self._session().request(
                method, f"{self.base_url}{path}", headers=headers, timeout=self._timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ApiUnavailable(f"{method} {path}: {exc.__class__.__name__}") from exc

    def _login(self, stale: str) -> str:
        with self._lock:
            if self._token and self._token != stale:
                return self._token  # another thread logged in meanwhile
            body = {"kind": "bot", "client_id": self._client_id, "client_secret": self._client_secret}
            response = self._send("POST", "/api/v1/auth/token", "", json=body)
            if response.status_code != 200:
                self._raise(response)
            self._token = response.json()["access_token"]
            return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send with the current token; on 401 log in once more and resend. Errors raise."""
        token = self._token or self._login("")
        response = self._send(method, path, token, **kwargs)
        if response.status_code == 401:
            response = self._send(method, path, self._login(token), **kwargs)
        if response.status_code >= 400:
            self._raise(response)
        return response

    @staticmethod
    def _raise(response: requests.Response) -> None:
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            raise ApiRateLimited("HTTP 429", int(retry_after) if retry_after.isdigit() else 60)
        if response.status_code >= 500:
            raise ApiUnavailable(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        raise ApiError(
            response.status_code,
            str(body.get("error", "error")),
            str(body.get("message", response.reason)),
            body.get("details"),
        )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # The calls the bot makes, one per endpoint.
    def upsert_user(
        self, telegram_id: int, username: str | None, language: str | None = None, referral_code: str | None = None
    ) -> dict:
        """Create or refresh the user; REFERRAL_CODE (from /start ref_<code>) refers a user this creates (the API
        decides, and ignores it otherwise)."""
        body: dict[str, Any] = {"username": username[:64] if username else None, "language": language}
        if referral_code is not None:
            body["referral_code"] = referral_code
        return self.json("PUT", f"/api/v1/users/telegram/{telegram_id}", json=body)

    def start_user(
        self, telegram_id: int, username: str | None, language: str, referral_code: str | None
    ) -> tuple[dict, bool]:
        """/start: create the user or refresh their username; returns (user, created). A user this creates gets
        LANGUAGE (Telegram's, until they choose); an existing one keeps the language they chose."""
        body: dict[str, Any] = {"username": username[:64] if username else None}
        if referral_code is not None:
            body["referral_code"] = referral_code
        response = self.request("PUT", f"/api/v1/users/telegram/{telegram_id}", json=body)
        if response.status_code != 201:
            return response.json(), False
        return self.upsert_user(telegram_id, username, language), True

    def referral(self, user_id: int) -> dict:
        """The user's invite code, the link's start parameter, the reward percent and the counts."""
        return self.json("GET", f"/api/v1/users/{user_id}/referral")

    def get_user_by_telegram(self, telegram_id: int) -> dict | None:
        try:
            return self.json("GET", f"/api/v1/users/telegram/{telegram_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def plans(self, location_tag: str | None = None, is_constant_ip: bool | None = None) -> list[dict]:
        params: dict[str, Any] = {"limit": 200}
        if location_tag:
            params["location_tag"] = location_tag
        if is_constant_ip is not None:
            params["is_constant_ip"] = "true" if is_constant_ip else "false"
        return self.json("GET", "/api/v1/plans", params=params)["items"]

    def get_plan(self, plan_id: int) -> dict:
        return self.json("GET", f"/api/v1/plans/{plan_id}")

    def locations(self) -> list[dict]:
        """The location catalog (tag, name, name_fa), in the shop's order."""
        return self.json("GET", "/api/v1/locations", params={"limit": 200})["items"]

    def create_payment(
        self,
        user_id: int,
        plan_id: int,
        amount_cents: int,
        file_id: str,
        file_unique_id: str,
        protocol: str,
        discount_code: str | None = None,
    ) -> tuple[dict, bool]:
        """The payment with its temporary config, and whether it is new (False: this proof was sent before).

        FILE_UNIQUE_ID is Telegram's id of the file itself: the API refuses the same receipt for another order.
        With DISCOUNT_CODE, AMOUNT_CENTS is the discounted price (quote_discount says it)."""
        body = {
            "user_id": user_id,
            "plan_id": plan_id,
            "amount_cents": amount_cents,
            "evidence_file_id": file_id,
            "evidence_unique_id": file_unique_id,
            "protocol": protocol,
        }
        if discount_code is not None:
            body["discount_code"] = discount_code
        response = self.request("POST", "/api/v1/payments", json=body)
        return response.json(), response.status_code == 201

    def create_topup(self, user_id: int, amount_cents: int, file_id: str, file_unique_id: str) -> tuple[dict, bool]:
        """A top-up of AMOUNT_CENTS into the wallet, and whether it is new (False: this proof was sent before)."""
        body = {
            "user_id": user_id,
            "purpose": "topup",
            "amount_cents": amount_cents,
            "evidence_file_id": file_id,
            "evidence_unique_id": file_unique_id,
        }
        response = self.request("POST", "/api/v1/payments", json=body)
        return response.json(), response.status_code == 201

    def attach_proof(self, payment_id: int, user_id: int, content: bytes) -> dict:
        """Upload the proof file of USER_ID's pending payment (its bytes as they are; the API tells the kind from
        them): the payment's view. ApiError proof_type_unsupported (415), proof_too_large (413), 409 when it is
        decided or has its proof already."""
        headers = {"Content-Type": "application/octet-stream"}
        path = f"/api/v1/payments/{payment_id}/proof"
        return self.json("PUT", path, params={"user_id": user_id}, data=content, headers=headers)

    def set_auto_renewal(self, user_id: int, config_id: int, enabled: bool) -> dict:
        """Opt the customer's config in (with its own plan) or out of auto-renewal; the config's view."""
        body = {"user_id": user_id, "enabled": enabled}
        return self.json("PUT", f"/api/v1/configs/{config_id}/auto-renewal", json=body)

    def quote_discount(self, user_id: int, plan_id: int, code: str) -> dict:
        """What CODE makes of the plan's price for the customer (amount_cents: what to pay), or ApiError with the
        refusal's code (discount_unknown, discount_expired, ...); ApiRateLimited after too many refusals."""
        body = {"code": code[:64], "plan_id": plan_id, "user_id": user_id}
        return self.json("POST", "/api/v1/discount-codes/quote", json=body)

    def pending_payments(self, limit: int = 20, user_id: int | None = None) -> list[dict]:
        """Payments waiting for review, oldest first: all of them, or USER_ID's."""
        params: dict[str, Any] = {"status": "pending", "limit": limit}
        if user_id is not None:
            params["user_id"] = user_id
        return self.json("GET", "/api/v1/payments", params=params)["items"]

    def get_payment(self, payment_id: int) -> dict:
        return self.json("GET", f"/api/v1/payments/{payment_id}")

    def approve(self, payment_id: int, acting_telegram_id: int) -> dict:
        body = {"acting_telegram_id": acting_telegram_id}
        return self.json("POST", f"/api/v1/payments/{payment_id}/approve", json=body)

    def reject(
        self, payment_id: int, acting_telegram_id: int, reason: str | None, ban: bool, reason_code: str | None = None
    ) -> dict:
        """REASON is told to the customer as written, REASON_CODE (a quick reason) in their language."""
        body: dict[str, Any] = {"acting_telegram_id": acting_telegram_id, "ban": ban}
        if reason:
            body["reason"] = reason[:500]
        if reason_code:
            body["reason_code"] = reason_code
        return self.json("POST", f"/api/v1/payments/{payment_id}/reject", json=body)

    def pending_page(self, limit: int) -> tuple[list[dict], bool]:
        """The oldest LIMIT payments waiting for review, and whether more are waiting."""
        page = self.json("GET", "/api/v1/payments", params={"status": "pending", "limit": limit})
        return page["items"], page["more"]

    def history(self, user_id: int) -> dict:
        """The customer's record for a review card: since when, trial, payments by status, money, configs, ban."""
        return self.json("GET", f"/api/v1/users/{user_id}/history")

    def review_event(self, payment_id: int, acting_telegram_id: int, event: str, hold: dict[str, Any]) -> dict:
        """Audit a decision HOLD the bot holds (EVENT "held") or that was undone ("undone")."""
        body: dict[str, Any] = {"acting_telegram_id": acting_telegram_id, "event": event, "decision": hold["verdict"]}
        if hold["verdict"] == "reject":
            body["ban"] = bool(hold.get("ban"))
            if hold.get("reason_code"):
                body["reason_code"] = hold["reason_code"]
        return self.json("POST", f"/api/v1/payments/{payment_id}/review-events", json=body)

    def trial(self, user_id: int, protocol: str) -> dict:
        return self.json("POST", f"/api/v1/users/{user_id}/trial", json={"protocol": protocol})

    def configs(self, user_id: int) -> list[dict]:
        return self.json("GET", f"/api/v1/users/{user_id}/configs")["items"]

    def subscription_url(self, user_id: int) -> str:
        return self.json("GET", f"/api/v1/users/{user_id}/subscription")["subscription_url"]

    def subscription_qr_png(self, user_id: int) -> bytes:
        """A QR code (PNG) of the user's subscription URL."""
        return self.request("GET", f"/api/v1/users/{user_id}/subscription/qr.png").content

    def notifications(self, limit: int = 50) -> list[dict]:
        return self.json("GET", "/api/v1/notifications", params={"limit": limit})["items"]

    def ack(self, ids: list[int]) -> int:
        return self.json("POST", "/api/v1/notifications/ack", json={"ids": ids})["acknowledged"]

    def nodes(self, acting_telegram_id: int) -> list[dict]:
        params = {"acting_telegram_id": acting_telegram_id}
        return self.json("GET", "/api/v1/nodes", params=params)["items"]

    def node_alerts(self, acting_telegram_id: int) -> list[dict]:
        """Nodes over a health threshold, or draining: what crossed, what is moved, what needs an admin."""
        params = {"acting_telegram_id": acting_telegram_id}
        return self.json("GET", "/api/v1/nodes/alerts", params=params)["items"]

    # Renewals and extra data of a paid config (the API decides what may be extended and what it costs).
    def renewal_quote(self, config_id: int, user_id: int, plan_id: int) -> dict:
        params = {"user_id": user_id, "plan_id": plan_id}
        return self.json("GET", f"/api/v1/configs/{config_id}/renewal", params=params)

    def extra_data_quote(self, config_id: int, user_id: int, data_mb: int) -> dict:
        params = {"user_id": user_id, "data_mb": data_mb}
        return self.json("GET", f"/api/v1/configs/{config_id}/extra-data", params=params)

    def extend_with_proof(
        self, config_id: int, user_id: int, order: dict[str, int], amount_cents: int, file_id: str, file_unique_id: str
    ) -> tuple[dict, bool]:
        """A renewal (ORDER {"plan_id": …}) or extra data ({"data_mb": …}) paid with a proof, like
        create_payment: the payment with its config, and whether it is new."""
        body = {
            "user_id": user_id,
            **order,
            "amount_cents": amount_cents,
            "evidence_file_id": file_id,
            "evidence_unique_id": file_unique_id,
        }
        path = "renew" if "plan_id" in order else "extra-data"
        response = self.request("POST", f"/api/v1/configs/{config_id}/{path}", json=body)
        return response.json(), response.status_code == 201

    def balance(self, user_id: int) -> int:
        return int(self.json("GET", f"/api/v1/users/{user_id}/wallet", params={"limit": 1})["balance_cents"])

    def extend_from_balance(self, config_id: int, user_id: int, order: dict[str, int]) -> dict:
        """A renewal or extra data paid from the balance, at once: the ledger row, the balance, the config."""
        body = {"extends_config_id": config_id, **order}
        return self.json("POST", f"/api/v1/users/{user_id}/wallet/purchases", json=body)

    def segment_counts(self, acting_telegram_id: int) -> dict[str, int]:
        """How many customers each broadcast segment (all, active, expired, never_bought) has now, for the
        Telegram admin ACTING_TELEGRAM_ID (the API lists segments to admins only)."""
        params = {"acting_telegram_id": acting_telegram_id}
        items = self.json("GET", "/api/v1/users/segments", params=params)["items"]
        return {item["segment"]: item["count"] for item in items}

    def segment_page(self, segment: str, after_id: int, acting_telegram_id: int, limit: int = 100) -> dict:
        """A page of the segment's customers after user id AFTER_ID: items (user_id, telegram_id, language) and
        next_after_id (None on the last page), for the Telegram admin who started the broadcast."""
        params = {"after_id": after_id, "limit": limit, "acting_telegram_id": acting_telegram_id}
        return self.json("GET", f"/api/v1/users/segments/{segment}", params=params)
