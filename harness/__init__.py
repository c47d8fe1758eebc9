"""Stand-ins for the world around rayfleet that tests and benches share: real PostgreSQL and Redis
servers, podman nodes on networks of their own, a whole fleet (API, worker, node), the AWS emulator,
a sing-box client, an HTTP origin, and the guard that keeps test traffic on this machine."""
