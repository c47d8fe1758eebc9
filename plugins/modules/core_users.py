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
  - Then writes the persisted config (the shape plus the users), validated by the core, so that a
    later restart serves the same users.
  - After a live removal, the removed users' open connections are closed (their sockets destroyed with
    C(ss -K), found through the core's access log), because the core's API only refuses new ones; other
    users' connections and the core itself are untouched. A removal whose UUID the same run adds back under
    another email is a rename (a warm pool identity adopted by a config): its connections stay open.
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
    type: json
    required: true
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
"""

import json
import os
import re
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule
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


def plan(current, desired):
    """(removals, additions) per inbound: [(tag, client)], comparing clients by email and content."""
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


def service_active(module):
    service = module.params["service"]
    if not service:
        return True
    rc, _out, _err = module.run_command(["systemctl", "is-active", "--quiet", service])
    return rc == 0


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
            "users": {"type": "json", "required": True, "no_log": True},
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
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        shape = _load_json(params["shape_path"], "shape")
        current = _load_json(params["config_path"], "config") if os.path.exists(params["config_path"]) else {}
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    try:
        users = check_users(json.loads(params["users"]))
    except (TypeError, ValueError) as exc:
        module.fail_json(msg=mask_uuids(f"users: {exc}"))
    desired = desired_inbounds(params["inbounds"], users)
    problems = validate_desired(desired, shape)
    if problems:
        module.fail_json(msg="; ".join(problems))

    removals, additions = plan(current, desired)
    text = json.dumps(merged_config(shape, desired), indent=4, ensure_ascii=False) + "\n"
    config_changed = not current or json.dumps(current, indent=4, ensure_ascii=False) + "\n" != text
    result = {
        "changed": bool(removals or additions or config_changed),
        "added": ["{}/{}".format(tag, client["email"]) for tag, _p, client in additions],
        "removed": ["{}/{}".format(tag, client["email"]) for tag, _p, client in removals],
        "api_calls": 0,
        "config_written": False,
        "sessions_cut": 0,
    }
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    # Validate first: a config the core rejects must not reach the running core either.
    staged = stage_config(module, text) if config_changed else None
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
    finally:
        if staged and os.path.exists(staged):
            os.unlink(staged)
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
