"""ansible-runner, the way rayfleet runs playbooks: one fresh private_data_dir per run, secrets never on disk.

    result = run_playbook("sync_users.yml", inventory, {"xray_users": [...]}, limit="node-a", timeout=120)

- project_dir is the repo's playbooks/ (an absolute playbook path works too), ANSIBLE_CONFIG the repo's
  ansible.cfg; the venv's bin first on PATH (RQ workers and systemd units have no activated venv;
  ansible-runner's `binary=` breaks runs).
- The repository is the collection rayfleet.fleet (galaxy.yml at its root): each run links it as
  <private_data_dir>/collections/ansible_collections/rayfleet/fleet (link_collection) and puts that
  directory first on ANSIBLE_COLLECTIONS_PATH, so playbooks use its roles, module and filters by FQCN.
  The collections of the PyPI `ansible` package (ansible.posix, community.general, ...) are still
  found on sys.path.
- Extravars (UUIDs) go to the child as `-e @<file>`: one JSON file, mode 0600, in the run's private_data_dir
  (0700), which is made on tmpfs (/dev/shm, RAM) when there is one and deleted when the run ends. A
  process killed mid-run (SIGKILL, the OOM killer, systemd's stop timeout) cannot delete it: its name
  carries the owner's pid, and the next run removes the directories of owners that are gone. Not on
  the command line: Linux limits one argument to 128 KiB (MAX_ARG_STRLEN), about 1,500 users, so a full
  sync of a larger node would fail with E2BIG (ansible-runner's own `extravars=` puts the JSON there).
  suppress_env_files=True: no env/ files; suppress_output_file=True: no artifacts/stdout. The event
  handler returns False, so no job_events/*.json is written either. What remains is ansible-runner's own
  artifacts/<ident>/command (mode 0600, in the same directory), which now names only the file.
- Everything the caller learns comes from events, never from parsing stdout: per-host stats
  (`playbook_on_stats`), the users module's `added`/`removed` (`runner_on_ok` of the
  `rayfleet.fleet.core_users` task) and failure messages (`runner_on_failed` / `runner_on_unreachable`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS_DIR = REPO / "playbooks"
ANSIBLE_CFG = REPO / "ansible.cfg"
# The collection the repository is (galaxy.yml), and where Ansible looks for collections by default.
COLLECTION_NAMESPACE, COLLECTION_NAME = "rayfleet", "fleet"
DEFAULT_COLLECTIONS_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")
USERS_MODULE = f"{COLLECTION_NAMESPACE}.{COLLECTION_NAME}.core_users"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MAX_ERROR_CHARS = 2000
# Only ever the parent of mkdtemp(): a fresh directory with a random name and mode 0700.
_MEMORY_TMP = Path("/dev/shm")  # noqa: S108
_RUN_DIR_PREFIX = "rayfleet-ansible-"
# <prefix><owner pid>-<mkdtemp's random part: lower-case letters, digits and underscores>
_RUN_DIR_NAME = re.compile(rf"{_RUN_DIR_PREFIX}(\d+)-[a-z0-9_]+")
_TASK_RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")


def scrub(text: str) -> str:
    """TEXT without UUIDs (a message may quote a client id), on one line-bounded, length-bounded string."""
    text = _UUID.sub("<uuid>", text).strip()
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass
class PlaybookResult:
    """What one playbook run did. `added`/`removed` count distinct client emails (not per inbound), summed over
    the hosts, and `host_counts` per host; `added_emails`/`removed_emails` list at most the module's first
    entries of each host."""

    rc: int
    status: str  # ansible-runner's: successful | failed | timeout | canceled | error
    duration_ms: int
    hosts: dict[str, HostStats] = field(default_factory=dict)
    added: int = 0
    removed: int = 0
    added_emails: list[str] = field(default_factory=list)
    removed_emails: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Hosts whose users module refused a delta (its base is not what the host serves): host -> why.
    resync_hosts: dict[str, str] = field(default_factory=dict)
    # The users module's own run time (the longest over the hosts), from its event: what a sync costs on the node.
    users_module_seconds: float = 0.0
    # host -> (added, removed) of its users module: a batched run's hosts each record their own.
    host_counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def counts_for(self, host: str) -> tuple[int, int]:
        """(added, removed) on HOST: its own counts, or the run's when it had no other host."""
        if host in self.host_counts:
            return self.host_counts[host]
        return (self.added, self.removed) if set(self.hosts) <= {host} else (0, 0)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    @property
    def changed(self) -> int:
        """Changed tasks over all hosts (0 when the run changed nothing)."""
        return sum(stats.changed for stats in self.hosts.values())

    @property
    def error(self) -> str:
        """A readable summary of what went wrong ("" on success); never contains a UUID."""
        if self.ok:
            return ""
        parts = list(self.errors)
        if self.status == "timeout":
            parts.insert(0, "the playbook run timed out")
        if not parts:
            parts.append(f"ansible-playbook ended with status {self.status} (rc={self.rc}) and reported no task error")
        return scrub("; ".join(parts))


class EventAccounting:
    """Consumes ansible-runner events (dicts) and keeps what a PlaybookResult needs."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostStats] = {}
        self.added: set[str] = set()
        self.removed: set[str] = set()
        self.errors: list[str] = []
        self.resync_hosts: dict[str, str] = {}
        self.added_count = self.removed_count = 0
        self.host_counts: dict[str, tuple[int, int]] = {}
        self.users_module_seconds = 0.0
        self._stats_seen = False

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host") or data.get("remote_addr") or "?"
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        if kind == "runner_on_ok" and self._is_users_task(data):
            self.added.update(_emails(res.get("added")))
            self.removed.update(_emails(res.get("removed")))
            # The module lists only the first entries of a large change; its counts are per host.
            added = int(res.get("added_count", len(_emails(res.get("added")))))
            removed = int(res.get("removed_count", len(_emails(res.get("removed")))))
            self.added_count += added
            self.removed_count += removed
            before = self.host_counts.get(host, (0, 0))
            self.host_counts[host] = (before[0] + added, before[1] + removed)
            self.users_module_seconds = max(self.users_module_seconds, float(data.get("duration") or 0.0))
            if res.get("resync_needed"):
                self.resync_hosts[host] = scrub(_message(res))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.errors.append(f"{host}: task {data.get('task', '?')!r} failed: {_message(res)}")
        elif kind == "runner_on_unreachable":
            self.errors.append(f"{host}: unreachable: {_message(res)}")
        elif kind == "playbook_on_stats":
            self._take_stats(data)
        if kind in _TASK_RESULTS and not self._stats_seen and not data.get("ignore_errors"):
            self._count(kind, host, res)
        return False  # never write the event to disk: results may carry users' data

    @staticmethod
    def _is_users_task(data: dict[str, Any]) -> bool:
        actions = (data.get("task_action"), data.get("resolved_action"))
        return USERS_MODULE in actions

    def _count(self, kind: str, host: str, res: dict[str, Any]) -> None:
        stats = self.hosts.setdefault(host, HostStats())
        if kind == "runner_on_ok":
            stats.ok += 1
            stats.changed += int(bool(res.get("changed")))
        elif kind == "runner_on_failed":
            stats.failed += 1
        elif kind == "runner_on_unreachable":
            stats.unreachable += 1
        else:
            stats.skipped += 1

    def _take_stats(self, data: dict[str, Any]) -> None:
        """playbook_on_stats is Ansible's own recap: it replaces the running count."""
        self._stats_seen = True
        fields = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped"}
        hosts: dict[str, HostStats] = {}
        for source, target in fields.items():
            for host, count in (data.get(source) or {}).items():
                setattr(hosts.setdefault(host, HostStats()), target, int(count))
        self.hosts = hosts


def _emails(entries: Any) -> set[str]:
    """The module returns "tag/email" per inbound; a user served on two inbounds is one user."""
    if not isinstance(entries, list):
        return set()
    return {str(entry).rsplit("/", 1)[-1] for entry in entries}


def _message(res: dict[str, Any]) -> str:
    message = res.get("msg") or res.get("stderr") or res.get("reason") or "no message"
    return " ".join(str(message).split())


def link_collection(collections_dir: str | os.PathLike[str]) -> Path:
    """Make COLLECTIONS_DIR/ansible_collections/rayfleet/fleet a link to the repository, the collection's
    root, so that COLLECTIONS_DIR on the collections path finds rayfleet.fleet. Idempotent; safe to race.

    The one place that links the collection: the runner (per run), scripts/lib.sh `ensure_collection_link`
    (`.ansible/collections`: hand runs, ansible-lint, molecule) and the tests call it. A link inside the
    repository is relative, so a moved checkout keeps working; the directory holding it must stay out of
    git (`.ansible/` is ignored), or the repository would contain itself. Returns the link's path.
    """
    namespace_dir = Path(collections_dir).absolute() / "ansible_collections" / COLLECTION_NAMESPACE
    namespace_dir.mkdir(parents=True, exist_ok=True)
    link = namespace_dir / COLLECTION_NAME
    inside = namespace_dir.resolve().is_relative_to(REPO)
    target = os.path.relpath(REPO, namespace_dir.resolve()) if inside else str(REPO)
    if link.is_symlink() and os.readlink(link) == target:
        return link
    if link.is_dir() and not link.is_symlink():
        # A copy installed there (ansible-lint without --offline builds and installs the collection to
        # this very path) goes stale at the next edit: replace it, but nothing that is not that copy.
        if not _is_installed_copy(link):
            raise FileExistsError(f"{link} is a directory but no installed copy of the collection: remove it")
        shutil.rmtree(link)
    staged = namespace_dir / f".{COLLECTION_NAME}-{os.getpid()}-{time.monotonic_ns()}"
    staged.symlink_to(target, target_is_directory=True)
    os.replace(staged, link)  # atomic: a concurrent reader sees the old link or the new one
    return link


def _is_installed_copy(path: Path) -> bool:
    """Whether PATH holds an installed build of this collection (ansible-galaxy writes MANIFEST.json)."""
    try:
        info = json.loads((path / "MANIFEST.json").read_text())["collection_info"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (info.get("namespace"), info.get("name")) == (COLLECTION_NAMESPACE, COLLECTION_NAME)


def _collections_path(collections_dir: Path) -> str:
    """ANSIBLE_COLLECTIONS_PATH for a run: the run's own link first, then Ansible's defaults."""
    return os.pathsep.join([str(collections_dir), *DEFAULT_COLLECTIONS_PATHS])


def _memory_tmp() -> str | None:
    """The RAM-backed tmpfs when it is a usable directory, else None (the default temporary directory)."""
    shm = _MEMORY_TMP
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _new_run_dir() -> str:
    """A fresh private_data_dir (mode 0700) named after this process, so that a later run can tell it
    from a live run's once this process is gone."""
    return tempfile.mkdtemp(prefix=f"{_RUN_DIR_PREFIX}{os.getpid()}-", dir=_memory_tmp())


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def reap_orphaned_run_dirs(parent: Path) -> list[str]:
    """Remove from PARENT the run directories of processes that no longer exist: what a run killed before
    its `finally` left behind, extravars (users' UUIDs) included. Only this user's directories; a live
    owner's are kept (a reused pid only keeps one longer). Returns the names removed."""
    removed = []
    for path in parent.glob(f"{_RUN_DIR_PREFIX}*"):
        match = _RUN_DIR_NAME.fullmatch(path.name)
        if match is None or _process_exists(int(match.group(1))):
            continue
        try:
            info = path.lstat()
        except FileNotFoundError:  # another run reaped it first
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _write_private(path: Path, text: str) -> Path:
    """TEXT in a new file PATH that only this user can read (created 0600, never wider)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def run_playbook(
    playbook: str,
    inventory: dict[str, Any],
    extravars: dict[str, Any],
    limit: str,
    timeout: int,
    forks: int | None = None,
) -> PlaybookResult:
    """Run PLAYBOOK (relative to playbooks/, or absolute) against INVENTORY limited to LIMIT (a host, or
    hosts separated by commas), FORKS hosts at a time (Ansible's default, 5, when None)."""
    reap_orphaned_run_dirs(Path(_memory_tmp() or tempfile.gettempdir()))
    private_data_dir = _new_run_dir()
    collections_dir = Path(private_data_dir) / "collections"
    accounting = EventAccounting()
    envvars = {
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_COLLECTIONS_PATH": _collections_path(collections_dir),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    started = time.monotonic()
    try:
        # rmtree below removes the link, never what it points at (it does not follow symlinks).
        link_collection(collections_dir)
        vars_file = _write_private(Path(private_data_dir) / "extravars.json", json.dumps(extravars))
        runner = ansible_runner.run(
            private_data_dir=private_data_dir,
            project_dir=str(PLAYBOOKS_DIR),
            playbook=playbook,
            inventory=inventory,
            cmdline=f"-e @{shlex.quote(str(vars_file))}",
            limit=limit,
            forks=forks,
            envvars=envvars,
            suppress_env_files=True,
            suppress_output_file=True,
            quiet=True,
            timeout=timeout,
            rotate_artifacts=1,
            event_handler=accounting,
        )
        rc, status = int(runner.rc if runner.rc is not None else -1), str(runner.status)
    finally:
        shutil.rmtree(private_data_dir, ignore_errors=True)
    return PlaybookResult(
        rc=rc,
        status=status,
        duration_ms=int((time.monotonic() - started) * 1000),
        hosts=accounting.hosts,
        added=accounting.added_count,
        removed=accounting.removed_count,
        added_emails=sorted(accounting.added),
        removed_emails=sorted(accounting.removed),
        errors=accounting.errors,
        resync_hosts=accounting.resync_hosts,
        users_module_seconds=accounting.users_module_seconds,
        host_counts=accounting.host_counts,
    )
