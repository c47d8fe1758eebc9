"""The Telegram storefront: a bilingual (en/fa) shop and admin desk that calls the control API over HTTP only."""
