"""Users -> the clients each inbound serves.

Shared by the users module (rayfleet.fleet.core_users, on the node) and the config filter (on the
controller), so both expand users the same way. Standard library only: it travels to the node inside
the module.
"""


def client_list(meta, users):
    """The clients of one inbound (META: tag, protocol, flow): every user of its protocol."""
    clients = []
    for user in users:
        if user.get("protocol") != meta["protocol"]:
            continue
        client = {"id": user.get("id"), "email": user.get("email"), "level": user.get("level", 0)}
        if meta["protocol"] == "vmess":
            client["alterId"] = 0
        elif meta.get("flow"):
            client["flow"] = meta["flow"]
        clients.append(client)
    return clients


def desired_inbounds(meta, users):
    """For every inbound, its tag, protocol and the clients it must serve."""
    return [{"tag": item["tag"], "protocol": item["protocol"], "clients": client_list(item, users)} for item in meta]
