"""English catalog. Placeholders are filled (and escaped) by bot.i18n.t; HTML tags are Telegram's subset."""

MESSAGES: dict[str, str] = {
    "choose_language": "Choose your language / زبان خود را انتخاب کنید",
    "lang_en": "English",
    "lang_fa": "فارسی",
    "welcome": "Welcome to the shop! Buy a VPN config, try one for free, or see the ones you have.",
    "help": "Commands: /start (menu and language), /buy, /trial, /configs, /invite, /support, /howto, /cancel.",
    "menu_buy": "🛒 Buy",
    "menu_trial": "🎁 Free trial",
    "menu_configs": "📄 My configs",
    "menu_language": "🌐 Language",
    "menu_invite": "👥 Invite friends",
    "menu_support": "🆘 Support",
    "menu_howto": "📱 How to connect",
    "support_ask": "Write your question in one message (a screenshot is fine too). It goes to our support team, "
    "and the answer comes back here.",
    "support_sent": "✅ Sent to support. You will get the answer here; reply to it to continue.",
    "support_limit": "You have sent several messages in the last hour. Please wait for the answer before "
    "writing again.",
    "support_unavailable": "Support is not reachable through the bot right now. Please try again later.",
    "support_to_admins": "🆘 <b>Support</b> from {raw}\nUser #{user_id} · Telegram {telegram_id} · "
    "language {customer_language}\nActive configs: {configs} · payments in review: {pending} · customer since {since}",
    "support_banned_customer": "⛔ This customer is banned.",
    "support_attachment": "📎 From the customer {telegram_id}",
    "support_no_text": "(no text)",
    "support_reply_hint": "↩️ Reply to this message to answer the customer.",
    "support_answer": "💬 <b>Support:</b> {text}",
    "support_answer_sent": "✅ Sent to the customer.",
    "rejected_support_hint": "If you think this is a mistake, tap 🆘 Support or send /support.",
    "howto_choose": "Which device do you want to connect?",
    "platform_android": "Android",
    "platform_ios": "iPhone / iPad",
    "platform_windows": "Windows",
    "platform_macos": "macOS",
    "howto_android": "<b>Android</b>\n1. Install <b>v2rayNG</b> or <b>Hiddify</b> from Google Play.\n"
    "2. Copy your subscription link below.\n3. In the app: the + button → Import from clipboard (subscription), then "
    "update it and connect.",
    "howto_ios": "<b>iPhone / iPad</b>\n1. Install <b>Streisand</b>, <b>FoXray</b> or <b>Hiddify</b> from the App "
    "Store.\n2. Copy your subscription link below.\n3. In the app: the + button → add from clipboard, then connect.",
    "howto_windows": "<b>Windows</b>\n1. Install <b>Hiddify</b> or <b>v2rayN</b>.\n"
    "2. Copy your subscription link below.\n3. In the app: add a subscription from the clipboard, update it and "
    "connect (v2rayN: set the system proxy).",
    "howto_macos": "<b>macOS</b>\n1. Install <b>Hiddify</b> or <b>FoXray</b>.\n2. Copy your subscription link below."
    "\n3. In the app: add it from the clipboard, then connect.",
    "howto_subscription": "Your subscription link (it keeps working when we change servers, so use it rather "
    "than single links):\n<code>{url}</code>",
    "unlimited": "unlimited",
    "days_hours": "{days} days {hours} h",
    "buy_category": "Step 1/5 — what kind of service?",
    "cat_constant": "Constant IP",
    "cat_dynamic": "Dynamic IP",
    "buy_location": "Step 2/5 — where should it connect?",
    "loc_local": "Local",
    "loc_abroad": "Abroad",
    "buy_duration": "Step 3/5 — for how long?",
    "dur_option": "{days} days",
    "buy_cap": "Step 4/5 — how much data?",
    "buy_devices": "Step 5/5 — on how many devices?",
    "dev_option": "{count} devices",
    "type_hint": "Tap a button (or type a number).",
    "summary": "<b>Your order</b>\nPlan: {name}\nType: {category}\nLocation: {location}\nDuration: {days} days\n"
    "Data: {data}\nDevices: {devices}\n<b>Price: {price}</b>{raw}\n\nConfirm?",
    "summary_code": "\n🏷 Code <b>{code}</b>: {off} off\n<b>To pay: {amount}</b>",
    "have_code": "🏷 I have a discount code",
    "ask_code": "🏷 Send your discount code as a message.",
    "no_code": "Continue without a code",
    "code_refused": "⚠️ {reason} Send another code, or continue without one.",
    "code_reason_discount_unknown": "This code is not valid.",
    "code_reason_discount_expired": "This code has expired.",
    "code_reason_discount_not_for_this_plan": "This code is not for this plan.",
    "code_reason_discount_already_used_by_you": "You have already used this code.",
    "code_reason_discount_used_up": "This code has been used up.",
    "code_rate_limited": "⏳ Too many codes were tried. Please wait {minutes} minutes, or continue without a code.",
    "code_refused_at_payment": "⚠️ Your discount code could not be used: {reason}\n\nYour receipt was passed to the "
    "admins; they will contact you here.",
    "code_refused_free": "⚠️ Your discount code could not be used: {reason} Nothing was charged. Please start again "
    "with 🛒 Buy.",
    "code_busy_proof": "⏳ Discount codes cannot be checked right now. Please send the same receipt again in {minutes} "
    "minutes; you will not pay twice.",
    "free_order_received": "🎁 Order <b>#{id}</b> is free with your code and waits for an admin's confirmation.\n\n"
    "Meanwhile here is a <b>TEMPORARY</b> config: {percent}% of the data, for {days} days. Once it is confirmed the "
    "same link gets the full plan.",
    "confirm": "✅ Confirm",
    "cancel": "✖️ Cancel",
    "ask_proof": "Please pay <b>{price}</b>.\n\nThen send the receipt here as a <b>photo</b> or a <b>document</b>.",
    "proof_wrong": "I need the receipt as a photo or a document (a file). Please send it again.",
    "no_plans": "Nothing is on sale here right now. Please try another choice.",
    "sold_out": "Sorry, nothing can be sold right now: no server has room for a new config. Nothing was charged. "
    "Please try again later.",
    "plan_unavailable": "⚠️ This plan cannot be delivered right now: no server has room for it. Nothing was "
    "charged. Please try again later with 🛒 Buy.",
    "choice_stale": "That choice is not available. Please pick one of the buttons.",
    "number_invalid": "There is no plan with that number. Please pick one of: {options}.",
    "cancelled": "Purchase cancelled. Nothing was charged.",
    "cancelled_after_details": "Order cancelled. If you already paid, send the receipt here any time: it will "
    "reach the admins.",
    "nothing_to_cancel": "There is nothing to cancel.",
    "payment_received": "🧾 Payment <b>#{id}</b> received and waiting for review.\n\nMeanwhile here is a "
    "<b>TEMPORARY</b> config: {percent}% of the data, for {days} days. Once the payment is approved the same "
    "link gets the full plan.",
    "payment_again": "🧾 This receipt was already received as payment <b>#{id}</b>; here is its config again.",
    "payment_waiting": "🧾 Payment <b>#{id}</b> received and waiting for review.\n\nNo server has room for your "
    "config right now. It will be sent to you here as soon as one is free; you do not need to do anything.",
    "payment_in_review": "⏳ Your payment <b>#{ids}</b> is still being reviewed. You can order again once it is "
    "decided.",
    "receipt_used_elsewhere": "⚠️ This receipt was already used for another order. Please send your own receipt "
    "(a photo or a document).",
    "receipt_added": "🧾 Received. I passed this file to the admins with your payment <b>#{ids}</b>, which is being "
    "reviewed. You will hear from us here once it is decided.",
    "receipt_no_order": "🧾 Received. You have no order waiting for review, so I passed this file to the admins: "
    "one of them will look at it. To buy a plan, tap 🛒 Buy.",
    "receipt_passed_on": "The receipt you just sent was passed to the admins with it.",
    "receipt_unrouted": "⚠️ I could not pass this file to the admins right now. Please send it again in a few minutes.",
    "receipt_limit": "You have sent several files in the last hour; the admins will look at those first. Please "
    "wait before sending more.",
    "config_card": "<b>Config #{id}</b> ({kind}, {status})\nData left: {data}\nTime left: {time}",
    "kind_temporary": "temporary",
    "kind_full": "full",
    "kind_trial": "trial",
    "links_header": "Links (tap to copy):",
    "no_links": "Its links appear once the server is ready.",
    "subscription": "Subscription URL (import it in your app):\n<code>{url}</code>",
    "qr_caption": "QR code of config #{id}",
    "api_down": "⚠️ The service is not reachable right now. Nothing was created or charged. Please try again "
    "in a minute.",
    "api_down_proof": "⚠️ The service is not reachable right now, so your receipt is not recorded yet. Please send "
    "the same receipt again in a minute; you will not pay twice.",
    "banned": "⛔ Your account is blocked: {reason}",
    "trial_used": "You have already used your free trial. You can buy a plan with 🛒 Buy.",
    "trial_ok": "🎁 Your free trial is ready:",
    "no_node": "No server is available right now. Please try again later.",
    "plan_gone": "This plan is no longer sold. Please start again with 🛒 Buy.",
    "refused": "Sorry, that did not work: {message}",
    "configs_none": "You have no configs yet. Tap 🛒 Buy or 🎁 Free trial.",
    "unknown_command": "Sorry, I don't know that command. Send /start for the menu.",
    "unknown_input": "Please use the menu buttons below, or send /start.",
    "too_fast": "One moment please…",
    "language_saved": "Language saved: English.",
    "notify_approved": "✅ Payment <b>#{payment_id}</b> is approved: {plan}. Your config now has the full plan:",
    "notify_rejected": "❌ Payment <b>#{payment_id}</b> was rejected.",
    "notify_reason": "Reason: {reason}",
    "notify_banned": "Your account is blocked.",
    "notify_expiring": "⏳ Config <b>#{config_id}</b> expires within 24 hours, on {date}. Renew it to stay connected "
    "on the same link.",
    "notify_quota_80": "📶 Config <b>#{config_id}</b> has used 80% of its data.",
    "notify_quota_100": "⛔ Config <b>#{config_id}</b> has used all its data and is paused.",
    "notify_expired": "⌛ Config <b>#{config_id}</b> has expired.",
    "notify_migrated": "🔁 Config <b>#{config_id}</b> moved to a new server. Your new links:",
    "notify_config_ready": "✅ A server is ready: config <b>#{config_id}</b> is placed. Your links:",
    "admin_new_payment": "🧾 <b>Payment #{id}</b> ({status})\nCustomer: {customer}\nPlan: {plan}\nAmount: {price}\n"
    "Auto-accepted at: {auto}",
    "admin_proof_caption": "Proof for payment #{id}",
    "notify_wallet_credited": "💰 Top-up <b>#{payment_id}</b> is approved: {amount} was added to your balance.",
    "admin_topup": "wallet top-up",
    "invite": "👥 <b>Invite friends</b>\n\nShare your personal link. When a friend who opens the shop through it makes "
    "their first paid purchase, {percent}% of its price goes to your balance.\n\n{link}\n\nInvited: {invited}\n"
    "Rewarded purchases: {credited} ({amount})",
    "invite_no_reward": "👥 <b>Invite friends</b>\n\nShare your personal link with your friends:\n\n{link}\n\n"
    "Invited: {invited}",
    "invite_share": "📤 Share the link",
    "invite_share_text": "A VPN shop I use: have a look.",
    "notify_referral_credited": "🎉 A friend you invited made their first purchase: {amount} was added to your "
    "balance.\nYour balance: {balance}",
    "admin_discount": "🏷 Discount code {code}: {off} off (price {price})",
    "admin_free_order": "🎁 Free with a discount code: there is no receipt, and it is never accepted automatically.",
    "admin_code_refused_receipt": "🧾 A receipt from {customer} for an order whose discount code {code} was refused "
    "when it was paid ({reason}). The customer was told an admin will contact them.",
    "admin_no_auto_accept": "never (an admin decides)",
    "admin_unplaced": "⚠️ No server had room: its config waits and is sent to the customer when a node has room.",
    "admin_extra_receipt": "🧾 Another receipt for payment #{ids} from {customer}",
    "admin_stray_receipt": "🧾 A receipt outside any order from {customer}. The customer was told an admin will "
    "look at it.",
    "admin_approve": "✅ Approve",
    "admin_reject": "❌ Reject",
    "admin_approved_by": "✅ Payment #{id} approved by {name}.",
    "admin_rejected_by": "❌ Payment #{id} rejected by {name}.",
    "admin_already": "Already {status} by {name}.",
    "admin_none_pending": "No payments are waiting for review.",
    "admin_usage_approve": "Usage: /approve PAYMENT_ID",
    "admin_usage_reject": "Usage: /reject PAYMENT_ID [ban] [reason]",
    "admin_not_found": "Payment #{id} does not exist.",
    "admin_refused": "Refused: {message}",
    "admin_not_admin": "You are not a shop admin.",
    "admin_nodes_unavailable": "Node status is not available to the bot: the API lets only admin logins read "
    "/nodes. (Use the API or the dashboard.)",
    "admin_nodes_header": "<b>Nodes</b>",
    "admin_nodes_none": "No nodes yet.",
    "admin_node_head": "<b>{name}</b> — {raw}",
    "admin_node_cpu": "CPU {value}%",
    "admin_node_latency": "latency {value} ms",
    "admin_node_heartbeat": "last heartbeat {at}",
    "admin_node_alert": "⚠️ Alert since {since}",
    "admin_node_draining": "⏸ Draining since {since}",
    "admin_node_configs": "Configs: {dynamic} dynamic, {constant} constant-IP",
    "list_sep": ", ",
    "node_status_provisioning": "provisioning",
    "node_status_active": "active",
    "node_status_draining": "draining",
    "node_status_offline": "offline",
    "node_status_disabled": "disabled",
    "node_health_healthy": "healthy",
    "node_health_stale": "stale",
    "node_health_never_seen": "never seen",
    "node_sync_in_sync": "in sync",
    "node_sync_syncing": "syncing",
    "node_sync_failing": "sync failing",
    "threshold_cpu": "CPU {value}% (limit {limit}%)",
    "threshold_latency": "latency {value} ms (limit {limit} ms)",
    "threshold_bandwidth": "bandwidth {value}% (limit {limit}%)",
    "threshold_dark": "no heartbeat for {value} s (limit {limit} s)",
    "threshold_other": "{name} {value} (limit {limit})",
    "alert_breach": "• {raw}",
    "alert_breach_since": "• {raw}, since {since}",
    "action_migrating": "→ migrating {count}",
    "action_no_healthy_node": "→ no healthy node in tier ({count})",
    "action_constant_ip_pinned": "→ constant-IP pinned: admin action needed ({count})",
    "action_other": "→ {code} ({count})",
    "notify_node_alert": "🚨 <b>Node {name}</b> crossed its limits:",
    "notify_node_alert_cleared": "✅ Node <b>{name}</b> is back to normal.",
    "report_title": "📊 <b>Sales report for {day}</b>",
    "report_received": "Received: <b>{amount}</b>",
    "report_received_purchase": "• purchases: {count} ({amount})",
    "report_received_renewal": "• renewals: {count} ({amount})",
    "report_received_extra_data": "• extra data: {count} ({amount})",
    "report_received_topup": "• wallet top-ups: {count} ({amount})",
    "report_plans": "Plans sold (by receipt or balance):",
    "report_plan_line": "• {name}: {purchases} new, {renewals} renewed ({amount})",
    "report_no_sales": "No plans sold.",
    "report_customers": "New customers: {new} · trials: {trials} · trials converted: {converted}",
    "report_queue": "Waiting for review now: {pending} · rejected that day: {rejected}",
    "report_nodes_alerting": "🚨 Nodes alerting now: {names}",
    "report_nodes_ok": "✅ No node is alerting.",
    "status_pending": "waiting for the server",
    "status_active": "active",
    "status_suspended": "paused",
    "status_expired": "expired",
    "status_revoked": "revoked",
    # Renewals and extra data (handlers/renewals.py) and their notifications.
    "ext_renew": "🔄 Renew",
    "ext_add_data": "📦 Add data",
    "back": "« Back",
    "config_temporary_note": "⏳ This is a <b>temporary</b> config: it serves you only while your payment is "
    "being reviewed. Once the payment is approved, this same link gets the full plan.",
    "config_in_review_note": "🧾 A renewal or extra data for this config is being reviewed (payment <b>#{ids}</b>).",
    "ext_menu": "<b>Config #{id}</b>: what would you like to do?",
    "ext_choose_plan": "<b>Renew config #{id}</b> (same link, more time)\nChoose a plan:",
    "ext_plan_option": "{name} · {days} days · {data} · {price}",
    "ext_choose_gb": "<b>Add data to config #{id}</b> for its current period (until {date}).\nHow much?",
    "ext_gb_option": "{data} · {price}",
    "ext_quote_renew": "<b>Renew config #{id}</b>\nPlan: {name} ({days} days)\n{until}: {current}\n"
    "After renewal: until <b>{new}</b>\n{raw}\n<b>Price: {price}</b>\nYour balance: {balance}",
    "ext_runs_until": "Now runs until",
    "ext_expired_on": "Expired on",
    "ext_data_reset": "Data: {data} for the new period, counted from zero",
    "ext_data_carry": "Data: {plan_data} + {carried} unused, carried over = <b>{data}</b>",
    "ext_meanwhile": "Paying with a receipt? While it is reviewed, the config works until {date} with {data} left.",
    "ext_same_link": "Your link stays the same.",
    "ext_quote_data": "<b>Add data to config #{id}</b>\nExtra: {data}, for this period (until {date})\n"
    "Data cap after: {cap}\n<b>Price: {price}</b>\nYour balance: {balance}",
    "ext_pay_wallet": "💰 Pay from my balance",
    "ext_pay_proof": "🧾 Pay with a receipt",
    "ext_renew_received": "🧾 Payment <b>#{id}</b> received and waiting for review. Once it is approved, config "
    "<b>#{config_id}</b> is renewed with {name} ({days} days), on the same link.",
    "ext_data_received": "🧾 Payment <b>#{id}</b> received and waiting for review. Once it is approved, {data} "
    "are added to config <b>#{config_id}</b>.",
    "ext_meanwhile_now": "Meanwhile it works until {date} with {data} left.",
    "ext_renewed_from_balance": "✅ Paid from your balance: config <b>#{id}</b> now runs until <b>{date}</b> with "
    "{data} of data. Your link stays the same.\nBalance: {balance}",
    "ext_data_from_balance": "✅ Paid from your balance: {data} added to config <b>#{id}</b>; its data cap is now "
    "{cap}.\nBalance: {balance}",
    "ext_balance_short": "Your balance ({balance}) does not cover {price}. You can pay with a receipt instead.",
    "ext_price_changed": "The price changed meanwhile; here is the new quote.",
    "ext_no_plans": "No plan can renew config #{id} right now. Please try again later.",
    "ext_not_renewable": "Config #{id} cannot be renewed or get more data: it was revoked or paused by the admins.",
    "ext_not_renewable_trial": "Config #{id} is a free trial: it cannot be renewed. Tap 🛒 Buy for a plan.",
    "ext_not_renewable_temporary": "Config #{id} is temporary: its payment is still being reviewed. Once it is "
    "approved you can renew it or add data.",
    "ext_data_expired": "Config #{id} has expired: extra data is for a period that is still running. Renew it instead.",
    "ext_in_review": "⏳ A renewal or extra data for config #{id} is already being reviewed (payment <b>#{ids}</b>). "
    "You can order again once it is decided.",
    "ext_offer_changed": "This offer changed meanwhile. Please start again from 📄 My configs.",
    "ext_gone": "That config is no longer available. Tap 📄 My configs to see yours.",
    "notify_renewed": "✅ Payment <b>#{payment_id}</b> is approved: config <b>#{config_id}</b> is renewed ({plan}) "
    "until <b>{date}</b>, with {data} of data. Your link stays the same.",
    "notify_renewed_carried": "{carried} of unused data was carried over.",
    "notify_data_added": "✅ Payment <b>#{payment_id}</b> is approved: {data} added to config <b>#{config_id}</b>. "
    "Its data cap for this period (until {date}) is now {cap}.",
    "notify_expiring_days": "⏳ Config <b>#{config_id}</b> expires within {days} days, on {date}. Renew it to stay "
    "connected on the same link.",
    "admin_renewal": "renewal of config #{id}: {plan}",
    "admin_extra_data": "extra data for config #{id}: {data}",
    # Auto-renewal (bot/auto_renew.py) and the top-up it offers (handlers/topup.py).
    "auto_renew_on": "🔁 Auto-renew: on",
    "auto_renew_off": "🔁 Auto-renew: off",
    "auto_renew_enabled": "Auto-renewal is on: config #{id} is renewed from your balance shortly before it expires.",
    "auto_renew_disabled": "Auto-renewal is off for config #{id}.",
    "auto_renew_refused_not_renewable": "This config cannot be renewed automatically in its current state.",
    "auto_renew_refused_plan": "Its plan is no longer sold, so it cannot be renewed automatically.",
    "auto_renew_refused_banned": "Your account is blocked.",
    "notify_auto_renewed": "🔁 Config <b>#{config_id}</b> was renewed automatically from your balance: {plan}, now "
    "until {expires}.\nCharged {amount}; balance left: {balance}.",
    "notify_auto_renew_failed": "⚠️ Config <b>#{config_id}</b> ({plan}, until {expires}) could not be renewed "
    "automatically. Nothing was charged.",
    "auto_renew_why_insufficient_balance": "Your balance is {balance} and the renewal costs {amount}: <b>{missing}</b> "
    "is missing. Top up before it expires and it is renewed automatically.",
    "auto_renew_why_plan_not_for_sale": "Its renewal plan is no longer sold. Please renew it with another plan.",
    "auto_renew_why_plan_not_allowed": "Its renewal plan can no longer renew it. Please renew it with another plan.",
    "auto_renew_why_user_banned": "Your account is blocked.",
    "auto_renew_why_extension_in_review": "A renewal of it is already waiting for review.",
    "auto_renew_why_config_not_renewable": "It cannot be renewed in its current state (for example, paused by an "
    "admin).",
    "auto_renew_why_other": "Reason: {message}",
    "topup_button": "💰 Top up {amount}",
    "topup_ask": "💰 Top up your balance with <b>{amount}</b>.\n\nPay it, then send the receipt here as a "
    "<b>photo</b> or a <b>document</b>.",
    "topup_received": "🧾 Top-up <b>#{id}</b> received and waiting for review. Once an admin approves it, {amount} "
    "is added to your balance.",
    "topup_again": "🧾 This receipt was already received as top-up <b>#{id}</b>; it is being reviewed.",
    "topup_cancelled": "Top-up cancelled. If you already paid, send the receipt here any time: it will reach the "
    "admins.",
    "segment_all": "Everyone",
    "segment_active": "Active customers",
    "segment_expired": "Expired customers",
    "segment_never_bought": "Never bought",
    "broadcast_choose": "📣 <b>Broadcast</b>\nWho should receive the message? Each group with how many customers "
    "it has now (banned customers never receive broadcasts).",
    "broadcast_segment_button": "{segment} ({count})",
    "broadcast_empty": "Nobody is in this group right now.",
    "broadcast_ask_text": "📣 To: <b>{segment}</b> ({count} customers).\nSend the message as text (or forward one). "
    "Customers receive the text exactly as written, not translated; formatting is not kept.",
    "broadcast_text_only": "Only a text message can be broadcast. Send the text, or press Cancel.",
    "broadcast_preview": "👀 <b>Preview</b>: the next message goes to <b>{segment}</b> ({count} customers) exactly as "
    "shown. Send it?",
    "broadcast_send": "📣 Send to {count}",
    "broadcast_started": "📣 Broadcast started to <b>{segment}</b> ({count} customers). The report comes here when it "
    "ends.",
    "broadcast_cancelled": "Broadcast cancelled; nothing was sent.",
    "broadcast_running": "📣 A broadcast to <b>{segment}</b> is running: {done} of about {total} customers done "
    "(delivered {delivered}, blocked {blocked}, failed {failed}). A new one can start when it ends.",
    "broadcast_report": "📣 <b>Broadcast finished</b>: {segment}\nDelivered: {delivered}\nBlocked the bot or left "
    "Telegram: {blocked}\nFailed: {failed}\nDuration: {duration}",
    "broadcast_aborted": "⚠️ Stopped early: the API refused the customer list ({message}).",
    "duration_hms": "{hours} h {minutes} min {seconds} s",
    "duration_ms": "{minutes} min {seconds} s",
    "duration_s": "{seconds} s",
}
