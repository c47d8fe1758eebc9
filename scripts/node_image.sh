#!/usr/bin/env bash
# The image the molecule scenarios boot: a minimal Debian 12 with systemd as PID 1, built locally
# (no container registry is reachable) once per machine and reused. Rebuilt only when this script
# changes (its digest is a label of the image) or when the image is missing.
# Holds only what Ansible needs to connect and what a role cannot install itself; roles still
# declare every package they use. Usage: bash scripts/node_image.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

image="${RAYFLEET_NODE_IMAGE:-localhost/rayfleet-node:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# python3: Ansible's modules; python3-apt: the apt module (else it installs it on every fresh
# container); sudo: `become` works as on a cloud image; systemd, systemd-sysv, dbus: PID 1 and systemctl.
# iproute2, logrotate: what the xray role installs on every node (apt then finds them present, which
# saves every provisioning in the tests a download and an install; a cloud image has them too).
packages="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,logrotate"
work=/var/tmp/rayfleet-node-image
debs=/var/cache/rayfleet-node-image/debs
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/molecule/containers.conf}"

ensure_podman
recipe=$(sha256sum <scripts/node_image.sh | cut -c1-16)
label=io.rayfleet.node-image.recipe

current=""
if podman image exists "$image"; then
  current=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$image")
fi
if [ "$current" = "$recipe" ] && [ "${1:-}" != "--force" ]; then
  echo "==> node image $image: cached (recipe $recipe)"
  exit 0
fi

mkdir -p "$(dirname "$work")" "$debs"
# One build at a time per machine; the second waits and then finds the image cached.
exec 9>"$work.lock"
if ! flock -n 9; then
  echo "==> node image: another build is running, waiting for it"
  flock -w 1800 9 || { echo "node image: lock $work.lock still held after 30 min (a hung build?)" >&2; exit 1; }
  if podman image exists "$image" &&
    [ "$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$image")" = "$recipe" ]; then
    echo "==> node image $image: built by the other run"
    exit 0
  fi
fi

# A killed run leaves a half-built rootfs, possibly with proc/sys still mounted inside it:
# unmount (deepest first) before deleting, and never cross into another file system.
clean_work() {
  if [ -d "$work" ]; then
    findmnt -rn -o TARGET | { grep -F "$work/" || true; } | sort -r | while read -r target; do
      umount -l "$target" || true
    done
    rm -rf --one-file-system "$work"
  fi
}
clean_work
trap clean_work EXIT

started=$SECONDS
echo "==> node image $image: debootstrap bookworm ($packages)"
mkdir -p "$work"
if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$debs" \
  bookworm "$work/rootfs" "$mirror" >"$work.log" 2>&1; then
  tail -n 30 "$work.log" >&2
  [ -f "$work/rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$work/rootfs/debootstrap/debootstrap.log" >&2
  echo "debootstrap failed (full log: $work.log)" >&2
  exit 1
fi
echo "    debootstrap: $((SECONDS - started)) s"
rm -f "$work.log"

rootfs="$work/rootfs"
# Each container gets its own machine id at boot; no downloaded .debs or apt lists in the image.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*_Packages
# An old timestamp, so apt's cache_valid_time sees no fresh index and roles refresh it, as on a new VM.
touch -d @0 "$rootfs"/var/lib/apt/lists
# The sources of a stock Debian 12 (updates and security too); roles run apt-get update themselves.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# Units that have nothing to do in a container and only slow the boot or fail.
for unit in systemd-remount-fs.service getty.target console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-firstboot.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done

tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL $label=$recipe" \
  --message "rayfleet node image (scripts/node_image.sh, recipe $recipe)" \
  - "$image" >/dev/null
# Earlier builds, now untagged; one that a container still uses stays until a later build.
podman image prune --force --filter "label=$label" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "==> node image $image: built in $((SECONDS - started)) s ($((size / 1024 / 1024)) MiB, recipe $recipe)"
