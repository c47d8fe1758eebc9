"""rayfleet node agent: runs on every node with Debian's python3 (3.11) and python3-psutil,
python3-requests and python3-grpcio only — no pip on nodes, so nothing else may be imported here.

Modules: config (settings), journal (append-only fsync'd traffic reports), core_api (per-user
counters through the role's gRPC client), collectors (host metrics, core unit health), backoff.
The reporter (HTTP heartbeat) and __main__ come next.

Node layout (what the node_agent role is to install; tests/unit/test_agent_node_layout.py proves it):

    <prefix>/agent/                 this package
    <prefix>/rayfleet_core_api.py   copied from roles/xray/module_utils/ (the one gRPC client; see core_api)

run as `python3 -m agent` with <prefix> as the working directory (or on PYTHONPATH).
"""
