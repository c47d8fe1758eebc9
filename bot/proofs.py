"""The customer's receipt, stored by the API for the admins to see (GET /payments/{id}/proof, admins only).

Once a payment is created from a photo or document, the bot fetches that file from Telegram and uploads it with
PUT /payments/{id}/proof. The payment stands whatever happens here: the admins still have the Telegram file id
on the review card. A file the API refuses for its kind (a .zip sent as a document) gets the customer a
request for a photo or a PDF, in their language; any other failure is logged, never the file id nor the file.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from telebot.apihelper import ApiException

from .api_client import ApiError, ApiUnavailable
from .context import Shop
from .i18n import t

log = logging.getLogger(__name__)

FILE_KINDS = ("photo", "document")  # a free order's "proof" is the bot's own reference: no file


def upload(
    shop: Shop, chat_id: int, language: str, payment: dict[str, Any], proof: dict[str, Any], user_id: int
) -> bool:
    """Upload PROOF (the receipt stored in the order's state) as PAYMENT's proof file for the customer USER_ID;
    True when the API stored it."""
    if proof.get("kind") not in FILE_KINDS:
        return False
    try:
        info = shop.bot.get_file(proof["file_id"])
        content = shop.bot.download_file(info.file_path)
    except (ApiException, requests.RequestException) as exc:
        log.warning("payment %s: its proof could not be fetched from Telegram (%s)", payment["id"], type(exc).__name__)
        return False
    try:
        shop.api.attach_proof(payment["id"], user_id, content)
    except ApiError as exc:
        if exc.code == "proof_type_unsupported":
            shop.say(chat_id, t(language, "proof_type_refused", id=payment["id"]))
        else:
            log.warning("payment %s: its proof was not stored (%s %s)", payment["id"], exc.status, exc.code)
        return False
    except ApiUnavailable as exc:
        log.warning("payment %s: its proof was not stored (%s)", payment["id"], type(exc).__name__)
        return False
    return True
