"""The admin channel's daily sales report (notification kind daily_report; figures from
control_api/services/reports.py)."""

from __future__ import annotations

from typing import Any

from .i18n import money, t

PURPOSES = ("purchase", "renewal", "extra_data", "topup")


def daily_report_text(language: str, currency: str, payload: dict[str, Any]) -> str:
    received = payload.get("received") or {}
    lines = [
        t(language, "report_title", day=payload.get("day", "")),
        t(language, "report_received", amount=money(payload.get("received_cents", 0), currency, language)),
    ]
    for purpose in PURPOSES:
        figures = received.get(purpose) or {}
        if figures.get("count"):
            lines.append(
                t(
                    language,
                    f"report_received_{purpose}",
                    count=figures["count"],
                    amount=money(figures.get("amount_cents", 0), currency, language),
                )
            )
    plans = payload.get("plans") or []
    if plans:
        lines.append(t(language, "report_plans"))
        lines.extend(
            t(
                language,
                "report_plan_line",
                name=plan.get("name") or f"#{plan.get('plan_id')}",
                purchases=plan.get("purchases", 0),
                renewals=plan.get("renewals", 0),
                amount=money(plan.get("amount_cents", 0), currency, language),
            )
            for plan in plans
        )
    else:
        lines.append(t(language, "report_no_sales"))
    lines.append(
        t(
            language,
            "report_customers",
            new=payload.get("new_customers", 0),
            trials=payload.get("trials_started", 0),
            converted=payload.get("trials_converted", 0),
        )
    )
    lines.append(
        t(
            language,
            "report_queue",
            pending=payload.get("pending_payments", 0),
            rejected=payload.get("rejected_payments", 0),
        )
    )
    alerting = payload.get("nodes_alerting") or []
    lines.append(
        t(language, "report_nodes_alerting", names=", ".join(alerting)) if alerting else t(language, "report_nodes_ok")
    )
    return "\n".join(lines)
