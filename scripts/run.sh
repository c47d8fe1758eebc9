#!/usr/bin/env bash
# First run on a fresh Debian 12 machine: the control API on the embedded default
# (a SQLite file, no Redis: token blocklist, rate limits and jobs stay in-process).
# Settings come from the environment (see .env.example); secrets live outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv requirements.txt
ensure_collection_link

data_dir="${RAYFLEET_DATA_DIR:-$HOME/.local/share/rayfleet}"
mkdir -p "$data_dir"
chmod 700 "$data_dir"
if [ -z "${JWT_SECRET_KEY:-}" ] && [ -z "${JWT_SECRET_KEY_FILE:-}" ]; then
  export JWT_SECRET_KEY_FILE="$data_dir/jwt_secret"
  if [ ! -s "$JWT_SECRET_KEY_FILE" ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' > "$JWT_SECRET_KEY_FILE")
  fi
fi
export DATABASE_URL="${DATABASE_URL:-sqlite:///$data_dir/rayfleet.sqlite3}"
host="${HOST:-127.0.0.1}"
port="${PORT:-8080}"
flask() { .venv/bin/flask --app control_api "$@"; }

echo "==> database: ${DATABASE_URL%%\?*}"
flask db upgrade
flask seed-demo
admin="${RAYFLEET_ADMIN:-admin}"
if flask admin-exists "$admin" >/dev/null 2>&1; then
  credentials="the password printed at first run (forgot it? .venv/bin/flask --app control_api reset-admin-password $admin)"
else
  password=$(flask create-admin "$admin" | awk '/^password: /{print $2}')
  credentials="password $password (shown once; only its hash is stored)"
fi

cat <<TXT

rayfleet control API: http://$host:$port
  API docs:      http://$host:$port/docs   (spec: /openapi.json)
  health:        http://$host:$port/api/v1/health
  log in as:     $admin, $credentials
  get a token:   curl -s -X POST http://$host:$port/api/v1/auth/token \\
                   -H 'Content-Type: application/json' \\
                   -d '{"kind": "admin", "username": "$admin", "password": "..."}'
  then:          curl -s http://$host:$port/api/v1/plans -H "Authorization: Bearer \$TOKEN"

TXT
# The Telegram bot too, when a token is set (TELEGRAM_BOT_TOKEN or TELEGRAM_BOT_TOKEN_FILE). Without
# RAYFLEET_BOT_CLIENT_ID, run.sh creates bot credentials once and keeps them in the data dir (mode 600).
if [ -n "${TELEGRAM_BOT_TOKEN:-}" ] || [ -n "${TELEGRAM_BOT_TOKEN_FILE:-}" ]; then
  export RAYFLEET_API_URL="${RAYFLEET_API_URL:-http://$host:$port}"
  if [ -z "${RAYFLEET_BOT_CLIENT_ID:-}" ]; then
    bot_credentials="$data_dir/bot_client"
    if [ ! -s "$bot_credentials" ]; then
      (umask 077 && flask create-bot-client "shopbot-$(date +%s)" > "$bot_credentials")
    fi
    RAYFLEET_BOT_CLIENT_ID=$(awk '/^client_id: /{print $2}' "$bot_credentials")
    export RAYFLEET_BOT_CLIENT_ID
    export RAYFLEET_BOT_CLIENT_SECRET_FILE="$data_dir/bot_client_secret"
    (umask 077 && awk '/^client_secret: /{print $2}' "$bot_credentials" > "$RAYFLEET_BOT_CLIENT_SECRET_FILE")
  fi
  echo "==> Telegram bot: python -m bot (API $RAYFLEET_API_URL; log: $data_dir/bot.log)"
  .venv/bin/python -m bot >> "$data_dir/bot.log" 2>&1 &
fi
if [ -z "${PUBLIC_BASE_URL:-}" ]; then
  cat <<TXT
WARNING: PUBLIC_BASE_URL is not set. Subscription URLs (/sub/…) will name the host each request
         came to, such as http://$host:$port, which customers cannot reach. Before selling, set
         PUBLIC_BASE_URL to the address customers use, e.g. PUBLIC_BASE_URL=https://vpn.example.com

TXT
fi
# One worker: the embedded default keeps rate limits and the blocklist in process memory. The access
# log goes through RedactingLogger: subscription tokens are credentials and never reach a log.
exec .venv/bin/gunicorn --workers 1 --threads 8 --bind "$host:$port" --access-logfile - \
  --config python:control_api.gunicorn_conf --logger-class control_api.gunicorn_logging.RedactingLogger 'control_api:create_app()'
