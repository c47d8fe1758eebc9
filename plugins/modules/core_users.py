#!/usr/bin/python
"""Ansible module: make the VPN core serve exactly the desired users, without restarting it."""

DOCUMENTATION = r"""
---
module: core_users
short_description: Apply the desired users of each inbound to a running Xray/V2Ray core, as a diff.
description:
  - Compares the desired clients of every inbound with what the node serves (the persisted config)
    and applies only the difference through the core's gRPC HandlerService (AlterInbound with
    AddUserOperation / RemoveUserOperation). The core is never restarted.
  - Then writes the persisted config (the shape plus the users) atomically, so that a later restart
    serves the same users. A full set (C(users)) is validated by the core first; a delta (C(delta))
    onto the state this module last wrote is not, because only clients changed (see the role's README).
    A small delta is spliced into the config's text rather than parsed and written whole; the bytes are
    the same (module_utils/config_splice.py).
  - With C(delta), the node's recorded state (C(state_path)) must be the delta's base revision and the
    config and shape on disk must be the ones it recorded; otherwise nothing changes and the result says
    C(resync_needed), so the caller sends the full set.
  - After a live removal, the removed users' open connections are closed (their sockets destroyed with
    C(ss -K), found through the core's access log), because the core's API only refuses new ones; other
    users' connections and the core itself are untouched. A removal whose UUID the same run adds back under
    another email is a rename (a warm pool identity adopted by a config), so its connections stay open.
  - Never logs UUIDs; results name clients by email only.
options:
  shape_path:
    description: The config rendered by the role without users.
    type: path
    required: true
  config_path:
    description: The live config file the core reads at start.
    type: path
    required: true
  inbounds:
    description: The user inbounds of the shape, each with C(tag), C(protocol) (vless or vmess) and C(flow).
    type: list
    elements: dict
    required: true
  users:
    description:
      - The desired users as JSON text, each with C(email), C(id) (UUID), C(protocol) and optional
        C(level). Every inbound of a user's protocol serves it. Handled as one no_log value.
      - Exactly one of C(users) and C(delta).
    type: json
  delta:
    description:
      - The change from the revision the node applied last, as JSON text with C(base_revision) (int),
        C(add) (users, as in C(users); one already served under its email is replaced) and C(remove)
        (emails). Handled as one no_log value.
    type: json
  also_remove:
    description:
      - With C(users), emails the running core may serve although the config on disk does not list them
        (what the control plane last had the node serve, when the file was restored from an old copy).
        They are removed through the API unless desired; one the core does not have is no error.
      - JSON text (a list of emails), like C(users).
    type: json
    default: "[]"
  revision:
    description: The revision this run brings the node to, recorded in C(state_path).
    type: int
  state_path:
    description: Where the revision the node serves and digests of the config and shape it last wrote
      are kept. Empty keeps no state (then C(delta) is refused).
    type: path
    default: ""
  service:
    description: The core's systemd unit; when it is not active, changes go to the file only.
    type: str
  core:
    description: Which core, hence which proto namespace (xray.* or v2ray.core.*).
    type: str
    choices: [xray, v2ray]
    required: true
  api_address:
    description: The core's API, host:port on loopback.
    type: str
    default: 127.0.0.1:10085
  apply_live:
    description: Push the difference to the running core. False when the core is not running or is
      about to restart (its config shape changed), so the file alone carries the change.
    type: bool
    default: true
  test_command:
    description: Command that validates a config file given as its last argument (e.g. v2ray -test -config).
    type: list
    elements: str
    default: []
  owner:
    description: Owner of the written config.
    type: str
    default: root
  group:
    description: Group of the written config (the core's group, which must read it).
    type: str
    default: root
  mode:
    description: Mode of the written config.
    type: str
    default: "0640"
  access_log:
    description: The core's access log, read to find the removed users' open connections. Empty turns
      closing them off (e.g. a core without an access log).
    type: path
    default: ""
  device_blocks:
    description:
      - The client addresses refused for one user each (the device guard's blocks), as JSON text, a list
        of C(email), C(address), C(until). Written with C(ports) to C(device_blocks_path) when it differs.
        Handled as one no_log value (addresses are personal data).
    type: json
  device_blocks_path:
    description: The device guard's blocks file (root-only). Empty writes none.
    type: path
    default: ""
  ports:
    description: The ports of the core's user inbounds, where the users' connections are.
    type: list
    elements: int
    default: []
author:
  - rayfleet maintainers
version_added: 1.0.0
"""

EXAMPLES = r"""
- name: Apply the users to the core as a diff (what roles/xray/tasks/users.yml does)
  rayfleet.fleet.core_users:
    shape_path: /etc/rayfleet-core/shape.json
    config_path: /etc/rayfleet-core/config.json
    inbounds: "{{ xray_inbounds | rayfleet.fleet.core_inbound_meta }}"
    users: "{{ xray_users | to_json }}"
    core: v2ray
    service: rayfleet-core
    test_command: [/usr/bin/v2ray, -test, -config]
    group: rayfleet-core
"""

RETURN = r"""
added:
  description: Emails of the clients added, as "tag/email".
  type: list
  returned: always
removed:
  description: Emails of the clients removed, as "tag/email".
  type: list
  returned: always
api_calls:
  description: How many AlterInbound calls were made.
  type: int
  returned: always
config_written:
  description: Whether the persisted config changed.
  type: bool
  returned: always
sessions_cut:
  description: How many open connections of removed users were closed.
  type: int
  returned: always
added_count:
  description: How many distinct emails were added (C(added) lists at most the first 100 entries).
  type: int
  returned: always
removed_count:
  description: How many distinct emails were removed (C(removed) lists at most the first 100 entries).
  type: int
  returned: always
device_blocks_written:
  description: Whether the device guard's blocks file changed.
  type: bool
  returned: always
resync_needed:
  description: The delta's base is not what the node serves (reason in C(msg)); nothing was changed.
  type: bool
  returned: always
"""

import hashlib
import json
import os
import re
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rayfleet.fleet.plugins.module_utils.config_splice import dumps_with_spans, splice_delta
from ansible_collections.rayfleet.fleet.plugins.module_utils.core_api import CoreAPI, CoreAPIError
from ansible_collections.rayfleet.fleet.plugins.module_utils.core_clients import desired_inbounds
from ansible_collections.rayfleet.fleet.plugins.module_utils.live_sessions import cut

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_RE = re.compile(f"^{UUID_PATTERN}$")  # validation: the whole value
UUID_ANYWHERE_RE = re.compile(UUID_PATTERN)  # masking: every UUID inside a message


def mask_uuids(text):
    """TEXT with every UUID replaced (Ansible masks only the module's own no_log values, not e.g. the
    UUIDs of users being removed that a core's message may quote)."""
    return UUID_ANYWHERE_RE.sub("<uuid>", text)


def _load_json(path, what):
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except ValueError as exc:
            raise ValueError(f"{what} {path} is not valid JSON: {exc}") from exc


USER_KEYS = {"id": str, "email": str, "protocol": str, "level": int}


def check_users(users):
    """The users list's shape (types only; validate_desired checks the values). Never quotes a UUID."""
    if not isinstance(users, list):
        raise TypeError("expected a list of users")
    for index, user in enumerate(users):
        if not isinstance(user, dict):
            raise TypeError(f"user #{index} is not a mapping")
        unknown = set(user) - set(USER_KEYS)
        if unknown:
            raise ValueError(f"user #{index} has unknown keys {sorted(unknown)}")
        for key, kind in USER_KEYS.items():
            if (key in user and not isinstance(user[key], kind)) or (kind is int and isinstance(user.get(key), bool)):
                raise TypeError(f"user #{index}: {key} must be {kind.__name__}")
        if user.get("protocol") not in ("vless", "vmess"):
            raise ValueError(f"user #{index} ({user.get('email')!r}): protocol must be vless or vmess")
    return users


def validate_desired(inbounds, shape):
    """Readable problems with the desired state; never quotes a UUID."""
    problems = []
    shape_tags = {inbound.get("tag") for inbound in shape.get("inbounds", [])}
    seen_emails = {}
    for inbound in inbounds:
        tag = inbound.get("tag")
        if tag not in shape_tags:
            problems.append(f"inbound {tag!r} is not in the rendered config; run provision_node.yml first")
        emails, owners = set(), {}
        for client in inbound.get("clients", []):
            email = client.get("email")
            if not email:
                problems.append(f"a client of inbound {tag!r} has an empty email (it could never be removed)")
                continue
            if email in emails:
                problems.append(f"email {email!r} appears twice in inbound {tag!r}")
            emails.add(email)
            if not UUID_RE.match(str(client.get("id", ""))):
                problems.append(f"client {email!r} of inbound {tag!r} has no valid UUID")
            else:
                owner = owners.setdefault(client["id"].lower(), email)
                if owner != email:
                    # The core accepts it, and removing one of them would lock out the other.
                    problems.append(f"clients {owner!r} and {email!r} of inbound {tag!r} share a UUID")
            other = seen_emails.setdefault(email, client.get("id"))
            if other != client.get("id"):
                problems.append(f"email {email!r} is used with two different UUIDs")
    return problems


def plan(current, desired, also_remove=()):
    """(removals, additions) per inbound: [(tag, client)], comparing clients by email and content.
    ALSO_REMOVE: emails to remove from every inbound where they are not desired, listed in CURRENT or not."""
    removals, additions = [], []
    current_by_tag = {
        inbound.get("tag"): {client.get("email"): client for client in inbound.get("settings", {}).get("clients", [])}
        for inbound in current.get("inbounds", [])
    }
    for inbound in desired:
        tag = inbound["tag"]
        now = current_by_tag.get(tag, {})
        wanted = {client["email"]: client for client in inbound["clients"]}
        for email, client in now.items():
            if wanted.get(email) != client:
                removals.append((tag, inbound["protocol"], client))
        for email, client in wanted.items():
            if now.get(email) != client:
                additions.append((tag, inbound["protocol"], client))
        for email in also_remove:
            if email not in wanted and email not in now:
                removals.append((tag, inbound["protocol"], {"email": email}))
    return removals, additions


def renamed_emails(removals, additions):
    """Emails among REMOVALS whose UUID the same run adds back under another email: renames (a warm pool's
    pool-<id> adopted by a config, cfg-<id>). They still go through remove + add, but their open connections
    are the same customer's and must not be cut."""
    added = {}
    for _tag, _p, client in additions:
        added.setdefault(str(client.get("id", "")).lower(), set()).add(client["email"])
    return {
        client["email"]
        for _tag, _p, client in removals
        if added.get(str(client.get("id", "")).lower(), set()) - {client["email"]}
    }


def merged_config(shape, desired):
    clients = {inbound["tag"]: inbound["clients"] for inbound in desired}
    for inbound in shape.get("inbounds", []):
        if inbound.get("tag") in clients:
            inbound.setdefault("settings", {})["clients"] = clients[inbound["tag"]]
    return shape


def apply_live(api, removals, additions):
    """Removals first (so a changed UUID under the same email works), then additions, pipelined.
    A removal of an absent user or an addition of a present one is already done, not an error."""
    messages = api.messages
    steps = (
        ([messages.remove_user(tag, client["email"]) for tag, _p, client in removals], "not_found"),
        (
            [
                messages.add_user(
                    tag, protocol, client["email"], client["id"], client.get("level", 0), client.get("flow", "")
                )
                for tag, protocol, client in additions
            ],
            "already_exists",
        ),
    )
    calls = 0
    for requests, harmless in steps:
        for outcome in api.alter_many(requests):
            if outcome is not None and not getattr(outcome, harmless):
                raise outcome
        calls += len(requests)
    return calls


def stage_config(module, text):
    """Write TEXT next to the live config and let the core validate it; return the staged file's path.

    Nothing live changes here: the staged file replaces the live one only after the API calls succeeded,
    so a config the core rejects changes neither the file nor the running core.
    """
    params = module.params
    directory = os.path.dirname(params["config_path"]) or "."
    handle, temp_path = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        if params["test_command"]:
            rc, stdout, stderr = module.run_command(params["test_command"] + [temp_path])
            if rc != 0:
                # The core's own message, minus anything that could echo a UUID.
                detail = mask_uuids((stderr or stdout).strip())[-2000:]
                module.fail_json(msg=f"the core rejected the new config: {detail}")
        module.set_owner_if_different(temp_path, params["owner"], False)
        module.set_group_if_different(temp_path, params["group"], False)
        module.set_mode_if_different(temp_path, params["mode"], False)
    except BaseException:  # fail_json exits through SystemExit: never leave the staged file behind
        os.unlink(temp_path)
        raise
    return temp_path


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state(path):
    """The recorded state ({} when there is none or it is unreadable: then only a full set is accepted)."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def resync_reason(params, state, base_revision, config_sha256):
    """Why a delta onto BASE_REVISION cannot be applied here ("" when it can). CONFIG_SHA256: the config's
    digest as read now (None when there is none)."""
    if not state:
        return "the node has no recorded state"
    if state.get("revision") != base_revision:
        return "the node serves revision {}, the delta starts at {}".format(state.get("revision"), base_revision)
    if config_sha256 is None or config_sha256 != state.get("config_sha256"):
        return "the config on the node is not the one this module wrote last"
    if sha256_file(params["shape_path"]) != state.get("shape_sha256"):
        return "the config shape changed since the last full sync"
    return ""


def check_delta(delta):
    """(base revision, users to add, emails to remove) from the delta document; never quotes a UUID."""
    if not isinstance(delta, dict) or set(delta) - {"base_revision", "add", "remove"}:
        raise ValueError("expected a mapping with base_revision, add and remove")
    base = delta.get("base_revision")
    if not isinstance(base, int) or isinstance(base, bool):
        raise TypeError("base_revision must be an integer")
    remove = delta.get("remove", [])
    if not isinstance(remove, list) or not all(isinstance(email, str) and email for email in remove):
        raise TypeError("remove must be a list of emails")
    return base, check_users(delta.get("add", [])), remove


def apply_delta(current, inbound_meta, additions, removed_emails):
    """Apply the delta to CURRENT (the persisted config, changed in place): per inbound, the clients of removed
    or re-added emails go and the added ones are appended. Returns (removals, additions, problems) as plan()
    and validate_desired() would for the whole set, in one pass over the clients: only the added clients are
    new, so only they are checked (a non-empty email once, a valid UUID no other client has)."""
    gone = set(removed_emails) | {user["email"] for user in additions}
    inbounds = {inbound.get("tag"): inbound for inbound in current.get("inbounds", [])}
    removals, added, problems = [], [], []
    for meta, wanted in zip(inbound_meta, desired_inbounds(inbound_meta, additions), strict=True):
        tag, protocol = meta["tag"], meta["protocol"]
        inbound = inbounds.get(tag)
        if inbound is None:
            problems.append(f"inbound {tag!r} is not in the config; run provision_node.yml first")
            continue
        kept, dropped = [], {}
        for client in inbound.setdefault("settings", {}).get("clients", []):
            if client.get("email") in gone:
                dropped[client.get("email")] = client
            else:
                kept.append(client)
        ids = {str(client.get("id", "")).lower() for client in kept}
        new_by_email = {}
        for client in wanted["clients"]:
            email, uuid = client.get("email"), str(client.get("id", ""))
            if not email:
                problems.append(f"a client of inbound {tag!r} has an empty email (it could never be removed)")
                continue
            if email in new_by_email:
                problems.append(f"email {email!r} appears twice in inbound {tag!r}")
            if not UUID_RE.match(uuid):
                problems.append(f"client {email!r} of inbound {tag!r} has no valid UUID")
            elif uuid.lower() in ids:
                problems.append(f"client {email!r} of inbound {tag!r} shares its UUID with another client")
            ids.add(uuid.lower())
            new_by_email[email] = client
            if dropped.get(email) != client:  # the very same client again is no change
                added.append((tag, protocol, client))
        removals.extend(
            (tag, protocol, client) for email, client in dropped.items() if new_by_email.get(email) != client
        )
        inbound["settings"]["clients"] = kept + wanted["clients"]
    return removals, added, problems


def write_atomically(module, path, text):
    """TEXT as PATH's new content: a staged file, flushed to disk, renamed over PATH (never half a file)."""
    params = module.params
    handle, temp_path = tempfile.mkstemp(prefix=".staged-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        module.set_owner_if_different(temp_path, params["owner"], False)
        module.set_group_if_different(temp_path, params["group"], False)
        module.set_mode_if_different(temp_path, params["mode"], False)
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise


def record_state(module, config_sha256=None, spans=None):
    """The revision now served and digests of the config (CONFIG_SHA256 when the caller knows it) and shape as
    written, for the next delta; with SPANS, where the config's clients arrays lie (module_utils/config_splice)."""
    params = module.params
    if not params["state_path"] or params["revision"] is None:
        return
    state = {
        "revision": params["revision"],
        "config_sha256": config_sha256 or sha256_file(params["config_path"]),
        "shape_sha256": sha256_file(params["shape_path"]),
    }
    if spans:
        state["spans"] = spans
    if read_state(params["state_path"]) != state:
        write_atomically(module, params["state_path"], json.dumps(state) + "\n")


def write_device_blocks(module):
    """The guard's blocks file, when asked for and different: {"ports", "blocks"}, root-only, renamed into place
    (the guard never reads half of one). Returns whether it was written."""
    params = module.params
    if not params["device_blocks_path"] or params["device_blocks"] is None:
        return False
    wanted = {"ports": params["ports"], "blocks": json.loads(params["device_blocks"])}
    try:
        with open(params["device_blocks_path"], encoding="utf-8") as handle:
            if json.load(handle) == wanted:
                return False
    except (OSError, ValueError):
        pass
    handle, temp_path = tempfile.mkstemp(prefix=".blocks-", dir=os.path.dirname(params["device_blocks_path"]) or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(wanted, out)
        os.chmod(temp_path, 0o600)
        os.replace(temp_path, params["device_blocks_path"])
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise
    return True


# Entries of `added`/`removed` a result lists: a full resync of 100,000 users would otherwise return 175,000
# strings that Ansible and the runner's events carry around for nothing (the counts say how many).
LISTED_ENTRIES = 100


def service_active(module):
    service = module.params["service"]
    if not service:
        return True
    rc, _out, _err = module.run_command(["systemctl", "is-active", "--quiet", service])
    return rc == 0


def _spans_of_unchanged(params, config_sha256):
    """The clients arrays' spans recorded for the config on disk, when the recorded digest is still CONFIG_SHA256,
    the file's; else None, and the next delta parses the config."""
    state = read_state(params["state_path"]) if params["state_path"] else {}
    spans = state.get("spans")
    return spans if isinstance(spans, dict) and state.get("config_sha256") == config_sha256 else None


def main():
    module = AnsibleModule(
        argument_spec={
            "shape_path": {"type": "path", "required": True},
            "config_path": {"type": "path", "required": True},
            "inbounds": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "tag": {"type": "str", "required": True},
                    "protocol": {"type": "str", "required": True, "choices": ["vless", "vmess"]},
                    "flow": {"type": "str", "default": ""},
                },
            },
            # One JSON document, not a list of dicts: per-element option checks and no_log masking of
            # every UUID cost seconds per thousand users; as one no_log string it is cheap and still hidden.
            "users": {"type": "json", "no_log": True},
            "delta": {"type": "json", "no_log": True},
            "also_remove": {"type": "json", "default": "[]"},
            "revision": {"type": "int"},
            "state_path": {"type": "path", "default": ""},
            "service": {"type": "str"},
            "core": {"type": "str", "required": True, "choices": ["xray", "v2ray"]},
            "api_address": {"type": "str", "default": "127.0.0.1:10085"},
            "apply_live": {"type": "bool", "default": True},
            "test_command": {"type": "list", "elements": "str", "default": []},
            "owner": {"type": "str", "default": "root"},
            "group": {"type": "str", "default": "root"},
            "mode": {"type": "str", "default": "0640"},
            "access_log": {"type": "path", "default": ""},
            "ports": {"type": "list", "elements": "int", "default": []},
            "device_blocks": {"type": "json", "no_log": True},
            "device_blocks_path": {"type": "path", "default": ""},
        },
        required_one_of=[("users", "delta")],
        mutually_exclusive=[("users", "delta")],
        supports_check_mode=True,
    )
    params = module.params
    result = {
        "changed": False,
        "added": [],
        "removed": [],
        "api_calls": 0,
        "config_written": False,
        "sessions_cut": 0,
        "resync_needed": False,
        "added_count": 0,
        "removed_count": 0,
        "device_blocks_written": False,
    }
    try:
        shape = _load_json(params["shape_path"], "shape")
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))

    if params["delta"] is not None:
        try:
            base, additions_wanted, removed_emails = check_delta(json.loads(params["delta"]))
        except (TypeError, ValueError) as exc:
            module.fail_json(msg=mask_uuids(f"delta: {exc}"))
        try:
            with open(params["config_path"], "rb") as handle:
                raw = handle.read()
        except OSError:
            raw = None
        config_sha256 = hashlib.sha256(raw).hexdigest() if raw is not None else None
        state = read_state(params["state_path"]) if params["state_path"] else {}
        reason = "no state" if not params["state_path"] else resync_reason(params, state, base, config_sha256)
        if reason:
            module.exit_json(msg=f"a full sync is needed: {reason}", **{**result, "resync_needed": True})
        # A small delta onto the text this module wrote is spliced into it (config_splice: the same bytes as
        # parsing and writing it whole, without the cost of a large config); anything else is parsed.
        spliced = None
        if isinstance(state.get("spans"), dict):
            wanted = desired_inbounds(params["inbounds"], additions_wanted)
            spliced = splice_delta(raw.decode("utf-8"), state["spans"], wanted, removed_emails, UUID_RE)
        if spliced is not None:
            text, spans, removals, additions, problems = spliced
            new_config = None
        else:
            try:
                current = json.loads(raw)
            except ValueError as exc:
                module.fail_json(msg=f"config {params['config_path']} is not valid JSON: {exc}")
            removals, additions, problems = apply_delta(current, params["inbounds"], additions_wanted, removed_emails)
            new_config = current
        config_changed = bool(removals or additions)
        validate_full = False
    else:
        try:
            current = _load_json(params["config_path"], "config") if os.path.exists(params["config_path"]) else {}
            users = check_users(json.loads(params["users"]))
        except (OSError, ValueError, TypeError) as exc:
            module.fail_json(msg=mask_uuids(f"users: {exc}" if not isinstance(exc, OSError) else str(exc)))
        desired = desired_inbounds(params["inbounds"], users)
        problems = validate_desired(desired, shape)
        also_remove = json.loads(params["also_remove"])
        if not isinstance(also_remove, list) or not all(isinstance(email, str) for email in also_remove):
            module.fail_json(msg="also_remove: expected a list of emails")
        removals, additions = plan(current, desired, also_remove)
        new_config = merged_config(shape, desired)
        config_changed, config_sha256 = not current or current != new_config, None
        validate_full = True
    if problems:
        module.fail_json(msg="; ".join(problems))
    result.update(
        changed=bool(removals or additions or config_changed),
        added=["{}/{}".format(tag, client["email"]) for tag, _p, client in additions[:LISTED_ENTRIES]],
        removed=["{}/{}".format(tag, client["email"]) for tag, _p, client in removals[:LISTED_ENTRIES]],
        added_count=len({client["email"] for _t, _p, client in additions}),
        removed_count=len({client["email"] for _t, _p, client in removals}),
    )
    if module.check_mode:
        module.exit_json(**result)
    tags = [inbound["tag"] for inbound in params["inbounds"]]
    if not config_changed:
        # The text on disk stays: hashed once here (17 MB at 100,000 users), for its spans and for the state.
        config_sha256 = config_sha256 or sha256_file(params["config_path"])
    if not result["changed"]:
        # Unchanged: the spans of the text on disk (a full set's text was not written; a delta's is the old one).
        record_state(module, config_sha256, _spans_of_unchanged(params, config_sha256))
        result["device_blocks_written"] = write_device_blocks(module)
        result["changed"] = result["device_blocks_written"]
        module.exit_json(**result)

    if new_config is not None:
        text, spans = dumps_with_spans(new_config, tags)
    written_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest() if config_changed else config_sha256
    # A full set is validated first: a config the core rejects must not reach the running core either.
    staged = stage_config(module, text) if config_changed and validate_full else None
    live = False
    try:
        if params["apply_live"] and (removals or additions) and service_active(module):
            live = True
            try:
                import grpc  # noqa: F401 - fail with a clear message if python3-grpcio is missing
            except ImportError:
                module.fail_json(msg="python3-grpcio is required on the node (apt install python3-grpcio)")
            api = CoreAPI(params["api_address"], params["core"])
            try:
                result["api_calls"] = apply_live(api, removals, additions)
            except CoreAPIError as exc:
                module.fail_json(msg=f"the core refused a user change: {mask_uuids(exc.details)}", **result)
            except Exception as exc:  # noqa: BLE001 - grpc.RpcError (API down) and anything else: report, never traceback
                module.fail_json(
                    msg="the core's API at {} did not answer: {}".format(params["api_address"], mask_uuids(str(exc))),
                    **result,
                )
            finally:
                api.close()
        if staged:
            os.replace(staged, params["config_path"])
            staged = None
            result["config_written"] = True
        elif config_changed:
            write_atomically(module, params["config_path"], text)
            result["config_written"] = True
    finally:
        if staged and os.path.exists(staged):
            os.unlink(staged)
    record_state(module, written_sha256, spans if config_changed else _spans_of_unchanged(params, written_sha256))
    result["device_blocks_written"] = write_device_blocks(module)
    if live and removals and params["access_log"]:
        emails = sorted({client["email"] for _tag, _p, client in removals} - renamed_emails(removals, additions))
        try:
            result["sessions_cut"] = cut(emails, params["access_log"], params["ports"])
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            module.fail_json(
                msg="the users were removed, but their open connections could not be closed (ss -K, "
                f"which needs iproute2 and a kernel with SOCK_DESTROY): {mask_uuids(detail.strip())[-500:]}",
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
