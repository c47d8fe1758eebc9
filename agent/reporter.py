"""Delivering heartbeats to the control API: log in as the node, send, and say what was stored.

Traffic reports leave the journal only after the API answered 2xx and named them accepted or
duplicate, so an outage of the control plane (or a lost response) loses and double-counts nothing.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from .config import AgentConfig


class DeliveryError(RuntimeError):
    """The heartbeat did not reach the API, or the API refused it; the journal keeps everything."""


class Refused(DeliveryError):
    """The API answered and refused this body for what it holds (413 too large, 422 invalid): sending the
    same body again can never succeed. DETAILS is the API's error details (JSON), when there are any."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.details = status, details


class Reporter:
    def __init__(self, config: AgentConfig, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self.config = config
        self.session = session or requests.Session()
        self.timeout = timeout
        self._token = ""
        self._token_expires = 0.0

    def _url(self, path: str) -> str:
        return self.config.api_url.rstrip("/") + path

    def _login(self) -> str:
        # The node's own login endpoint (same token JSON as /api/v1/auth/token).
        body = {"client_id": self.config.client_id, "client_secret": self.config.client_secret}
        try:
            response = self.session.post(self._url("/api/v1/nodes/register"), json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DeliveryError(f"the control API is unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise DeliveryError(f"login refused with HTTP {response.status_code}")
        token = response.json()
        self._token = token["access_token"]
        # Renew a minute early so a heartbeat never races the expiry.
        self._token_expires = time.monotonic() + max(int(token["expires_in"]) - 60, 1)
        return self._token

    def _token_now(self) -> str:
        return self._token if self._token and time.monotonic() < self._token_expires else self._login()

    def send(self, heartbeat: dict[str, Any]) -> dict[str, Any]:
        """POST the heartbeat; return the API's answer (accepted, duplicates, desired_revision, ...)."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token_now()}"}
            try:
                response = self.session.post(
                    self._url("/api/v1/nodes/heartbeat"), json=heartbeat, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise DeliveryError(f"the control API is unreachable: {type(exc).__name__}") from exc
            if response.status_code == 401 and attempt == 1:
                self._token = ""  # revoked or expired early: log in again once
                continue
            if response.status_code in (413, 422):
                raise Refused(
                    response.status_code, f"heartbeat refused with HTTP {response.status_code}", _details(response)
                )
            if not 200 <= response.status_code < 300:
                raise DeliveryError(f"heartbeat refused with HTTP {response.status_code}: {response.text[:300]}")
            return response.json()
        raise DeliveryError("heartbeat refused: the new token was not accepted either")


def _details(response: requests.Response) -> Any:
    try:
        return response.json().get("details")
    except (ValueError, AttributeError):
        return None
