"""Close the live connections of users the core no longer serves.

Removing a user through the core's API refuses only new connections: an open download goes on. The core's
access log names, for every connection it accepts, the client's address and port and the user's email;
the kernel names the core's established sockets. A socket whose client address:port was last accepted
for a removed user is that user's, and is destroyed (``ss -K``, SOCK_DESTROY): the client sees a reset,
the core and everyone else's connections are untouched.

Only the latest accept of an address:port counts: behind a NAT the same address (even, later, the same
port) may carry another customer, whose newer line then wins. Connections older than the part of the log
read (``max_bytes`` from its end, and the rotated file before it when the current one is short) are not
found; the log's rotation keeps enough for the connections a node holds.

Both cores' formats are read (V2Ray 4: ``<date> <time> <addr>:<port> accepted <dest> email: <email>``;
Xray adds ``from`` and the route in brackets).
"""

import ipaddress
import os
import re
import subprocess

ACCEPTED = re.compile(
    r"^\S+ \S+ (?:from )?(?:tcp:|udp:)?(?P<address>\[[0-9a-fA-F:.]+\]|[0-9.]+):(?P<port>[0-9]{1,5}) accepted "
    r"\S+(?: \[[^\]]*\])?(?: email: (?P<email>\S+))?\s*$"
)
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


def normal_address(text):
    """TEXT spelled as parse_accepted() spells an address (ValueError when it is none)."""
    return str(ipaddress.ip_address(str(text).strip("[]")))


def parse_accepted(line):
    """(client address, client port, email) of an accepted connection's log line; None for any other line
    (rejected, the core's own messages, a line cut by rotation, garbage)."""
    match = ACCEPTED.match(line)
    if match is None or not match.group("email"):
        return None
    try:
        address = normal_address(match.group("address"))
    except ValueError:
        return None
    port = int(match.group("port"))
    if not 0 < port < 65536:
        return None
    return address, port, match.group("email")


def _tail(path, max_bytes):
    """The last MAX_BYTES of PATH as text lines (the first, possibly cut, dropped); [] when absent."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if start else lines


def log_lines(path, max_bytes=DEFAULT_MAX_BYTES):
    """The end of the access log, oldest first: the rotated file's end too when the current file is short
    (a rotation just happened)."""
    current = _tail(path, max_bytes)
    try:
        short = os.path.getsize(path) < max_bytes
    except OSError:
        short = True
    older = _tail(path + ".1", max_bytes) if short else []
    return older + current


def latest_owners(lines):
    """{(address, port): email} of the latest accepted connection from each client address:port."""
    owners = {}
    for line in lines:
        parsed = parse_accepted(line)
        if parsed is not None:
            owners[parsed[:2]] = parsed[2]
    return owners


def _peer(text):
    """(address, port) of an ss peer column ("1.2.3.4:5", "[::1]:5", "[::ffff:1.2.3.4]:5")."""
    host, _sep, port = text.rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener names IPv4 clients this way; the log does not
    return str(address), int(port)


def _port_filter(ports):
    return "( " + " or ".join(f"sport = :{int(port)}" for port in sorted(set(ports))) + " )"


def established(ports, run=subprocess.run):
    """[(local "addr:port", peer "addr:port")] of the established TCP sockets on the core's inbound PORTS."""
    if not ports:
        return []
    done = run(["ss", "-Htn", "state", "established", _port_filter(ports)], capture_output=True, text=True, check=True)
    sockets = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:  # Recv-Q Send-Q Local Peer (state is implied by the filter)
            sockets.append((fields[-2], fields[-1]))
    return sockets


def destroy_peers(ports, peers, run=subprocess.run):
    """Destroy the established connections on PORTS whose client is one of PEERS ({(address, port)});
    returns how many were destroyed."""
    if not peers or not ports:
        return 0
    destroyed = 0
    for local, peer_text in established(ports, run):
        peer = _peer(peer_text)
        if peer is None or peer not in peers:
            continue
        local_port = local.rpartition(":")[2]
        ss_address = peer_text.rpartition(":")[0]
        query = f"( sport = :{local_port} and dst {ss_address} and dport = :{peer[1]} )"
        # A connection that ended meanwhile is not an error: nothing to destroy.
        run(["ss", "-K", "-Htn", "state", "established", query], capture_output=True, text=True, check=True)
        destroyed += 1
    return destroyed


def cut(emails, log_path, ports, run=subprocess.run, max_bytes=DEFAULT_MAX_BYTES):
    """Destroy the established connections on PORTS whose client was last accepted for one of EMAILS;
    returns how many were destroyed."""
    emails = set(emails)
    if not emails or not ports:
        return 0
    owners = latest_owners(log_lines(log_path, max_bytes))
    return destroy_peers(ports, {peer for peer, email in owners.items() if email in emails}, run)
