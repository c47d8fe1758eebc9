# Shared by run.sh and test.sh: install what is missing, idempotently, on Debian 12.
# shellcheck shell=bash

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
# ensure_apt PACKAGE... : install the Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt_updated=1
  fi
  as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv REQUIREMENTS_FILE [--shared] : a .venv in the repo with the pinned requirements installed.
# --shared (the test command): a checkout without its own .venv gets a link to a venv kept per machine under
# $RAYFLEET_VENV_CACHE, one per Python version and set of requirement files, so that every fresh clone (CI)
# does not spend minutes in pip on the same pins. The venv is made and filled through its real path (its
# scripts' #! lines name it, never a clone that may be deleted), one install at a time (a lock in it).
RAYFLEET_VENV_CACHE="${RAYFLEET_VENV_CACHE:-/var/cache/rayfleet/venvs}"
ensure_venv() {
  local requirements="$1" digest
  digest=$(cat requirements*.txt | sha256sum | cut -c1-16)
  if [ "${2:-}" = "--shared" ] && [ ! -e .venv ] && [ ! -L .venv ]; then
    local shared
    shared="$RAYFLEET_VENV_CACHE/$(python3 -c 'import sys; print("py%d.%d" % sys.version_info[:2])')-$digest"
    mkdir -p "$shared"
    touch "$shared"
    ln -s "$shared" .venv
    prune_shared_venvs
  fi
  mkdir -p .venv
  local venv
  venv=$(readlink -f .venv)
  touch "$venv" # used now: prune_shared_venvs goes by this time
  (
    flock -w 1800 8 || { echo "ensure_venv: $venv/.lock held for 30 min (a hung pip?)" >&2; exit 1; }
    if [ ! -x "$venv/bin/python" ]; then
      if ! python3 -m venv "$venv" 2>/dev/null; then
        ensure_apt python3-venv
        python3 -m venv "$venv"
      fi
    fi
    # The stamp skips pip when nothing changed since the last install.
    local stamp="$venv/.installed-$(basename "$requirements")"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
      echo "==> pip install -r $requirements"
      "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
      echo "$digest" >"$stamp"
    fi
  ) 8>"$venv/.lock"
}

# prune_shared_venvs : the shared venvs nobody used for 14 days (superseded pins), unless one is in use now.
prune_shared_venvs() {
  local old
  find "$RAYFLEET_VENV_CACHE" -mindepth 1 -maxdepth 1 -type d -mtime +14 2>/dev/null | while read -r old; do
    (flock -n 8 && rm -rf --one-file-system "$old") 8>"$old/.lock" || true
  done
}

# ensure_collection_link : the repository is the Ansible collection rayfleet.fleet (galaxy.yml). Link it
# as .ansible/collections/ansible_collections/rayfleet/fleet (git-ignored), the directory ansible.cfg,
# ansible-lint and the molecule scenarios look in, with the function the control API's runner uses for
# its own runs (link_collection in control_api/runners/ansible.py). Needs the venv (ensure_venv first).
ensure_collection_link() {
  .venv/bin/python -c 'import sys; from control_api.runners.ansible import link_collection; link_collection(sys.argv[1])' \
    .ansible/collections >/dev/null
}

# ensure_postgres_binaries : initdb/pg_ctl for the test cluster (Debian's postgresql package).
ensure_postgres_binaries() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    ensure_apt postgresql
  fi
}

# ensure_podman : rootful podman with runc (crun 1.8 rejects this machine's hybrid cgroups) and
# debootstrap for the node image (scripts/node_image.sh). As root, podman needs neither uidmap nor
# slirp4netns (CNI bridge) nor fuse-overlayfs (kernel overlay); the molecule scenarios run as root.
ensure_podman() {
  ensure_apt podman runc debootstrap debian-archive-keyring
}

# ensure_checkov : checkov (IaC scanner, tests/integration/test_terraform.py) in its own venv under
# .venv/tools/: the current release pins packaging==23.2, which pytest 9 (packaging>=24) refuses, so in
# the main venv pip would fall back to a two-year-old checkov. Pinned here; the stamp skips pip.
CHECKOV_VERSION=3.3.30
ensure_checkov() {
  local main_venv venv
  main_venv=$(readlink -f .venv)
  venv="$main_venv/tools/checkov"
  [ "$(cat "$venv/.installed" 2>/dev/null)" = "$CHECKOV_VERSION" ] && return 0
  (
    flock -w 1800 8 || { echo "ensure_checkov: $main_venv/.lock held for 30 min" >&2; exit 1; }
    [ "$(cat "$venv/.installed" 2>/dev/null)" = "$CHECKOV_VERSION" ] && exit 0
    echo "==> pip install checkov==$CHECKOV_VERSION (own venv)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
    echo "$CHECKOV_VERSION" >"$venv/.installed"
  ) 8>"$main_venv/.lock"
}
