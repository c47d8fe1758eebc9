"""Users -> the clients each inbound serves, and a config shape with them filled in.

Shared by the users module (rayfleet.fleet.core_users, on the node) and the config filters (on the
controller), so both expand users the same way. Standard library only: it travels to the node inside
the module.
"""

import copy


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


def with_users(shape, desired):
    """SHAPE with every inbound's clients filled in from DESIRED (desired_inbounds' output), as the users
    module persists it; SHAPE itself is left unchanged."""
    config = copy.deepcopy(shape)
    clients = {item["tag"]: item["clients"] for item in desired}
    for inbound in config["inbounds"]:
        if inbound["tag"] in clients:
            inbound["settings"]["clients"] = clients[inbound["tag"]]
    return config
