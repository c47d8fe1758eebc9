"""rayfleet node agent: runs on every node with Debian's python3 (3.11) and python3-psutil,
python3-requests and python3-grpcio only — no pip on nodes, so nothing else may be imported here.

Modules: config (settings), journal (append-only fsync'd traffic reports), core_api (per-user
counters through the collection's gRPC client), collectors (host metrics, core unit health), probes
(the latency: median TCP connect time to the probe targets), backoff.
The reporter (HTTP heartbeat) and __main__ come next.

Node layout (what the node_agent role is to install; tests/unit/test_agent_node_layout.py proves it):

    <prefix>/agent/                                this package
    <prefix>/plugins/__init__.py                   the collection's gRPC client as a plain package,
    <prefix>/plugins/module_utils/__init__.py      imported as plugins.module_utils.core_api (the one
    <prefix>/plugins/module_utils/core_api.py      client of the core's API; see core_api)

run as `python3 -m agent` with <prefix> as the working directory (or on PYTHONPATH).
"""
