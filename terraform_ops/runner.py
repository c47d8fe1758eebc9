"""Terraform commands through tftest, with each line of output shown as it comes (the progress)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tftest

Progress = Callable[[str], None]

# A CLI configuration that installs hashicorp/* providers from a filesystem mirror (offline machines).
_MIRROR_CONFIG = """provider_installation {{
  filesystem_mirror {{
    path    = {path}
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/hashicorp/*"]
  }}
}}
"""


class TerraformError(RuntimeError):
    """A terraform command failed; the message carries its output."""


@dataclass(frozen=True)
class PlanSummary:
    """What a saved plan would do, counted from ``terraform show -json``."""

    add: int
    change: int
    destroy: int

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def __str__(self) -> str:
        return f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"

    @classmethod
    def of(cls, plan: Mapping[str, Any]) -> PlanSummary:
        add = change = destroy = 0
        for resource in plan.get("resource_changes", []):
            actions = resource["change"]["actions"]
            add += "create" in actions
            destroy += "delete" in actions
            change += actions == ["update"]
        return cls(add, change, destroy)


class _LineRelay(logging.Handler):
    """Hands each line tftest logs (one per line of terraform output) to the progress callback."""

    def __init__(self, progress: Progress, started: float) -> None:
        super().__init__(logging.INFO)
        self.progress = progress
        self.started = started

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.msg, str):  # tftest also logs the command line as a list; we print our own
            return
        self.progress(f"  [{time.monotonic() - self.started:6.1f}s] {record.getMessage()}")


class Terraform:
    """One root module directory (e.g. ``terraform/envs/example``) and the commands operators run on it.

    ``plugin_mirror``: a directory of provider packages (``/opt/tf-plugins``) for machines without the
    public registry; a CLI config pointing at it is written under ``.terraform/`` and used through
    ``TF_CLI_CONFIG_FILE`` (which otherwise may point at a file that does not exist).
    ``env``: extra environment for terraform (credentials, ``AWS_ENDPOINT_URL`` in tests).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        plugin_mirror: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        progress: Progress | None = print,
        binary: str = "terraform",
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.progress = progress or (lambda _line: None)
        environment = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **(env or {})}
        if plugin_mirror:
            environment["TF_CLI_CONFIG_FILE"] = str(self._write_cli_config(Path(plugin_mirror)))
        self._tf = tftest.TerraformTest(str(self.workdir), binary=binary, env=environment)

    def _write_cli_config(self, mirror: Path) -> Path:
        config = self.workdir / ".terraform" / "rayfleet-cli.tfrc"
        config.parent.mkdir(exist_ok=True)
        config.write_text(_MIRROR_CONFIG.format(path=json.dumps(str(mirror.resolve()))))
        return config

    # -- commands ------------------------------------------------------------------------------------

    def init(self, *, lockfile_readonly: bool = True) -> None:
        """Install providers and modules; with the committed lock file, refuse to change it."""
        args = ["-input=false", "-no-color"]
        if lockfile_readonly:
            args.append("-lockfile=readonly")
        self.run("init", *args)

    def plan(self, out: str | os.PathLike[str], *, var_files: Iterable[str] = (), destroy: bool = False) -> PlanSummary:
        """Save a plan to ``out`` and count what it would do."""
        args = ["-input=false", "-no-color", f"-out={out}", *_var_file_args(var_files)]
        if destroy:
            args.append("-destroy")
        self.run("plan", *args)
        return PlanSummary.of(self.show_json(out))

    def has_drift(self, *, var_files: Iterable[str] = ()) -> bool:
        """Plan with ``-detailed-exitcode``: False when reality matches the configuration (exit 0)."""
        args = ["-input=false", "-no-color", "-detailed-exitcode", *_var_file_args(var_files)]
        result = self.run("plan", *args, ok=(0, 2))
        return result.retcode == 2

    def show_json(self, planfile: str | os.PathLike[str]) -> dict[str, Any]:
        """A saved plan as JSON (what checkov's terraform_plan framework scans)."""
        return json.loads(self.run("show", "-json", "-no-color", str(planfile), quiet=True).out)

    def apply(
        self,
        planfile: str | os.PathLike[str] | None = None,
        *,
        var_files: Iterable[str] = (),
        parallelism: int | None = None,
    ) -> None:
        """Apply a saved plan, or (without one) plan and apply in one go with ``-auto-approve``."""
        args = ["-input=false", "-no-color", *_parallelism_args(parallelism)]
        if planfile is not None:
            args.append(str(planfile))
        else:
            args += ["-auto-approve", *_var_file_args(var_files)]
        self.run("apply", *args)

    def destroy(self, *, var_files: Iterable[str] = (), parallelism: int | None = None) -> None:
        self.run(
            "destroy", "-input=false", "-no-color", "-auto-approve", *_parallelism_args(parallelism),
            *_var_file_args(var_files),
        )  # fmt: skip

    def outputs(self) -> dict[str, Any]:
        """``terraform output -json``: {name: {"value": …, "type": …, "sensitive": …}}."""
        return json.loads(self.run("output", "-json", "-no-color", quiet=True).out)

    def state_resources(self) -> list[str]:
        """Addresses in the state (empty after a complete destroy)."""
        result = self.run("state", "list", quiet=True, ok=(0, 1))
        return [line for line in result.out.splitlines() if line.strip()]

    # -- plumbing ------------------------------------------------------------------------------------

    def run(self, command: str, *args: str, quiet: bool = False, ok: tuple[int, ...] = (0,)) -> Any:
        """Run one terraform command, relaying its output as progress unless ``quiet``; raise on failure."""
        started = time.monotonic()
        self.progress(f"==> terraform {command} {' '.join(args)}".rstrip())
        logger = logging.getLogger("tftest")
        relay = None if quiet else _LineRelay(self.progress, started)
        previous_level, previous_propagate = logger.level, logger.propagate
        if relay is not None:
            logger.addHandler(relay)
            logger.setLevel(logging.INFO)
            logger.propagate = False  # the lines go to the progress callback, not to the root logger too
        try:
            result = self._tf.execute_command(command, *args)
        except tftest.TerraformTestError as exc:
            raise TerraformError(f"terraform {command} failed: {exc}") from exc
        finally:
            if relay is not None:
                logger.removeHandler(relay)
                logger.setLevel(previous_level)
                logger.propagate = previous_propagate
        if result.retcode not in ok:
            raise TerraformError(f"terraform {command} exited {result.retcode}: {result.err or result.out}")
        self.progress(f"<== terraform {command}: {time.monotonic() - started:.1f}s")
        return result


def _var_file_args(var_files: Iterable[str]) -> list[str]:
    return [f"-var-file={path}" for path in var_files]


def _parallelism_args(parallelism: int | None) -> list[str]:
    return [f"-parallelism={parallelism}"] if parallelism else []
