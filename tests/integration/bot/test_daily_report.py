"""The daily sales report as the admin channel gets it: queued by the API's report step on the real outbox,
rendered by the bot's notifier in the admin language, sent once."""

from __future__ import annotations

import time
from dataclasses import replace

from sqlalchemy import select

from control_api.models import Notification, utcnow
from control_api.services import reports
from tests.integration.bot.conftest import ADMIN_CHAT


def test_the_daily_report_reaches_the_admin_chat_once(harness):
    tg = harness.telegram
    mark = len(tg.events)
    settings = replace(harness.app.extensions["rayfleet.settings"], shop_timezone="Asia/Tehran", daily_report_hour=0)
    with harness.db() as session:
        assert reports.post_daily_report(session, settings, utcnow()) is True
        session.commit()
        day = session.scalar(select(Notification.payload).where(Notification.kind == "daily_report"))["day"]
    text = tg.reply(ADMIN_CHAT, mark, "Sales report").text
    assert text.splitlines()[0] == f"📊 <b>Sales report for {day}</b>"
    assert "Received: <b>0 USD</b>" in text and "No plans sold." in text and "✅ No node is alerting." in text
    with harness.db() as session:  # the next sweep of the day queues nothing new
        assert reports.post_daily_report(session, settings, utcnow()) is False
        session.commit()
    time.sleep(1)  # a few notifier rounds: sent once
    assert len([e for e in tg.bot_events(ADMIN_CHAT, mark) if "Sales report" in (e.text or "")]) == 1
