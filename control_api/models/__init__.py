"""Typed SQLAlchemy 2 models, one module per aggregate; importing this registers them all."""

from .audit import ACTOR_TYPES, AuditLog
from .auto_renewal import AUTO_RENEWAL_OUTCOMES, AutoRenewal
from .base import Base, column_attributes, columns_of, utcnow
from .device import DeviceBlock
from .discount import DiscountCode, DiscountRedemption
from .identity_pool import PoolIdentity
from .location import Location
from .node import (
    CORES,
    LAST_METRIC_COLUMNS,
    NODE_HEALTH,
    NODE_STATUSES,
    SYNC_STATES,
    SYNC_STATUSES,
    THRESHOLD_KEYS,
    THRESHOLDS,
    Node,
    NodeMetric,
    NodeServedUser,
    SyncRun,
)
from .notification import AUDIENCES, NOTIFICATION_KINDS, Notification
from .plan import RENEWAL_DATA_RULES, Plan
from .principal import Admin, BotClient
from .referral import REFERRAL_OUTCOMES, Referral
from .sales import (
    CONFIG_KINDS,
    CONFIG_STATUSES,
    EXTENSION_PURPOSES,
    PAYMENT_PURPOSES,
    PAYMENT_STATUSES,
    PROOF_MIME_TYPES,
    PROTOCOLS,
    REJECT_REASON_CODES,
    SUSPEND_REASONS,
    Payment,
    UserConfig,
)
from .usage import Usage, UsageReport
from .user import LANGUAGES, User
from .wallet import CREDIT_REASONS, DEBIT_REASONS, WALLET_REASONS, WalletEntry
from .webhook import DELIVERY_STATUSES, WEBHOOK_EVENTS, Webhook, WebhookDelivery

__all__ = [
    "ACTOR_TYPES",
    "AUDIENCES",
    "AUTO_RENEWAL_OUTCOMES",
    "CONFIG_KINDS",
    "CONFIG_STATUSES",
    "CORES",
    "CREDIT_REASONS",
    "DEBIT_REASONS",
    "DELIVERY_STATUSES",
    "EXTENSION_PURPOSES",
    "LANGUAGES",
    "LAST_METRIC_COLUMNS",
    "NODE_HEALTH",
    "NODE_STATUSES",
    "NOTIFICATION_KINDS",
    "PAYMENT_PURPOSES",
    "PAYMENT_STATUSES",
    "PROOF_MIME_TYPES",
    "PROTOCOLS",
    "REFERRAL_OUTCOMES",
    "REJECT_REASON_CODES",
    "RENEWAL_DATA_RULES",
    "SUSPEND_REASONS",
    "SYNC_STATES",
    "SYNC_STATUSES",
    "THRESHOLDS",
    "THRESHOLD_KEYS",
    "WALLET_REASONS",
    "WEBHOOK_EVENTS",
    "Admin",
    "AuditLog",
    "AutoRenewal",
    "Base",
    "BotClient",
    "DeviceBlock",
    "DiscountCode",
    "DiscountRedemption",
    "Location",
    "Node",
    "NodeMetric",
    "NodeServedUser",
    "Notification",
    "Payment",
    "Plan",
    "PoolIdentity",
    "Referral",
    "SyncRun",
    "Usage",
    "UsageReport",
    "User",
    "UserConfig",
    "WalletEntry",
    "Webhook",
    "WebhookDelivery",
    "column_attributes",
    "columns_of",
    "utcnow",
]
