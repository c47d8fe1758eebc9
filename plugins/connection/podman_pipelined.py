# The test containers' connection: containers.podman.podman with pipelining.
# GNU General Public License v3.0+ (the plugin it extends is GPL-3.0+; see COPYING at
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers.podman.podman, with pipelining.

That plugin runs every module as four `podman exec` calls (make a temporary directory, copy the
module in, run it, remove the directory); each `podman exec` costs about 0.18 s here. It cannot
pipeline only because `podman exec` does not pass its standard input on without `-i`. This one
adds `-i` when Ansible has input for the command, so a pipelined module is one `podman exec`.

A running container on runc is reached more directly: `runc exec` (0.05 s here against 0.2 s for `podman
exec`, which also starts podman itself and conmon) with the process spec podman gave the container (the same
capabilities, seccomp filter, cgroup, environment and working directory as `podman exec`), and files are
copied into its mounted root. The parent ran `podman mount` (0.2 s) for every task; the container's id and
root come from one `podman container inspect`, kept in a small cache per container name that is trusted only
while that id's init process still runs (a removed or re-created container has a new id; runc's state alone is
not enough, as a container whose conmon was killed leaves it behind when removed). Anything else (another
runtime, a non-root remote user, no runc state) takes the parent's `podman` path.
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

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

# What podman 4 says (exit code 255 or 125) when it cannot exec in the container at all.
_CANNOT_EXEC = (b"can only create exec sessions on running containers", b"no container with name or ID")
# Where rootful podman's runc keeps each running container's state (runc's default --root for root).
RUNC_ROOT = "/run/runc"
# Container name -> {"id", "root"}: one small JSON file each, in a directory of root's alone (tmpfs).
CACHE_DIR = os.path.join("/run" if os.access("/run", os.W_OK) else tempfile.gettempdir(), "rayfleet-podman-connection")


def _runc_state(container_id):
    return os.path.join(RUNC_ROOT, container_id, "state.json")


def _runc_init_running(container_id):
    """Whether runc's state for CONTAINER_ID names a live init process (its pid with the same start time, as
    runc itself checks): a removed container's state can outlive it, and its pid may be reused."""
    try:
        with open(_runc_state(container_id), encoding="utf-8") as state_file:
            state = json.load(state_file)
        pid, started = int(state["init_process_pid"]), int(state["init_process_start"])
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat_file:
            stat = stat_file.read()
        # Field 22 (starttime), counted from field 3, the first one after the parenthesised name.
        return pid > 0 and int(stat[stat.rindex(")") + 2 :].split()[19]) == started
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _cached_target(name):
    try:
        with open(os.path.join(CACHE_DIR, name), encoding="utf-8") as cached:
            target = json.load(cached)
    except (OSError, ValueError):
        return None
    if not isinstance(target, dict) or not _runc_init_running(str(target.get("id"))):
        _forget_target(name)
        return None
    return target


def _remember_target(name, target):
    try:
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        handle, temp_path = tempfile.mkstemp(dir=CACHE_DIR)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(target, out)
        os.replace(temp_path, os.path.join(CACHE_DIR, name))
    except OSError:
        pass  # a cache only: the next task inspects again


def _forget_target(name):
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(CACHE_DIR, name))


class Connection(PodmanConnection):
    transport = "rayfleet.fleet.podman_pipelined"
    has_pipelining = True

    def _connect(self):
        self._runc_target = None
        if not self.user or self.user in ("root", "0"):
            self._runc_target = self._find_runc_target()
        if self._runc_target is None:
            return super()._connect()  # `podman mount`, and `podman exec` for every command
        ConnectionBase._connect(self)
        # Bytes, as the parent keeps what `podman mount` printed.
        self._mount_point = to_bytes(self._runc_target["root"], errors="surrogate_or_strict")
        self._connected = True
        return self

    def _find_runc_target(self):
        """The running runc container's id and mounted root, from the cache or one `podman inspect`."""
        name = self._container_id
        if not name or "/" in name or name.startswith("."):
            return None
        target = _cached_target(name)
        if target is not None:
            return target
        rc, stdout, _stderr = self._podman(["container", "inspect", "--format", "json"], [name], use_container_id=False)
        if rc != 0:
            return None
        try:
            [info] = json.loads(stdout)
            if info["OCIRuntime"] != "runc" or not info["State"]["Running"]:
                return None
            target = {"id": info["Id"], "root": info["GraphDriver"]["Data"]["MergedDir"]}
        except (ValueError, KeyError, TypeError):
            return None
        if not os.path.exists(_runc_state(target["id"])) or not os.path.isdir(os.path.join(target["root"], "etc")):
            return None
        _remember_target(name, target)
        return target

    def _run_through_runc(self, cmd_args, in_data):
        runc = shutil.which("runc")
        if runc is None:
            raise AnsibleConnectionFailure("runc is not on PATH")
        command = [runc, "--root", RUNC_ROOT, "exec", self._runc_target["id"], *cmd_args]
        process = subprocess.Popen(  # noqa: S603 - the play's own command, as the parent's podman exec
            [to_bytes(arg, errors="surrogate_or_strict") for arg in command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = process.communicate(input=in_data)
        if process.returncode != 0 and not self._runc_container_running(runc):
            # runc's own failure, not the command's: the container stopped or was removed.
            _forget_target(self._container_id)
            raise AnsibleConnectionFailure(f"runc exec in {self._container_id}: {to_native(stderr).strip()}")
        return process.returncode, stdout, stderr

    def _runc_container_running(self, runc):
        state = subprocess.run(  # noqa: S603 - runc and a container id from podman
            [runc, "--root", RUNC_ROOT, "state", self._runc_target["id"]], capture_output=True, check=False
        )
        try:
            return state.returncode == 0 and json.loads(state.stdout).get("status") == "running"
        except ValueError:
            return False

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        # ConnectionBase's own bookkeeping only (the parent's exec_command would run the command).
        super(PodmanConnection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        cmd_args = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        if self._runc_target is not None:
            return self._run_through_runc(cmd_args, in_data)
        exec_args = ["exec"]
        if in_data is not None:
            exec_args.append("--interactive")
        if self.user:
            exec_args.extend(("--user", self.user))
        rc, stdout, stderr = self._podman(exec_args, cmd_args, in_data)
        if rc in (125, 255) and any(marker in stderr for marker in _CANNOT_EXEC):
            raise AnsibleConnectionFailure(f"podman exec in {self._container_id}: {to_native(stderr).strip()}")
        return rc, stdout, stderr
