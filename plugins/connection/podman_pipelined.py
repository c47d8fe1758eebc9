# The test containers' connection: containers.podman.podman with pipelining.
# GNU General Public License v3.0+ (the plugin it extends is GPL-3.0+; see COPYING at
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers.podman.podman, with pipelining.

That plugin runs every module as four `podman exec` calls (make a temporary directory, copy the
module in, run it, remove the directory); each `podman exec` costs about 0.18 s here. It cannot
pipeline only because `podman exec` does not pass its standard input on without `-i`. This one
adds `-i` when Ansible has input for the command, so a pipelined module is one `podman exec`.
A container that is stopped or gone is a connection failure (the host is unreachable), as with SSH: the
parent only found out when its first call (making the temporary directory) failed, and a pipelined
module's failed exec would otherwise read as a module failure.
Used by the molecule scenarios and the test fleets; nodes in production are reached over SSH.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: podman_pipelined
    short_description: Run tasks in an existing podman container, pipelined
    description:
      - containers.podman.podman, with pipelining (one C(podman exec -i) per module).
    options:
      remote_addr:
        description: The name or ID of the container.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: The user the commands run as in the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description: The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description: Send modules on standard input instead of copying them in (on by default).
        type: boolean
        default: true
        env:
          - name: ANSIBLE_PODMAN_PIPELINING
        vars:
          - name: ansible_podman_pipelining
"""

import shlex

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

# What podman 4 says (exit code 255 or 125) when it cannot exec in the container at all.
_CANNOT_EXEC = (b"can only create exec sessions on running containers", b"no container with name or ID")


class Connection(PodmanConnection):
    transport = "rayfleet.fleet.podman_pipelined"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        # ConnectionBase's own bookkeeping only (the parent's exec_command would run the command).
        super(PodmanConnection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        exec_args = ["exec"]
        if in_data is not None:
            exec_args.append("--interactive")
        if self.user:
            exec_args.extend(("--user", self.user))
        rc, stdout, stderr = self._podman(exec_args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
        if rc in (125, 255) and any(marker in stderr for marker in _CANNOT_EXEC):
            raise AnsibleConnectionFailure(f"podman exec in {self._container_id}: {to_native(stderr).strip()}")
        return rc, stdout, stderr
