"""Wrappers around the tools that change nodes (ansible-runner); jobs call these, handlers never do."""

from .ansible import PlaybookResult, run_playbook

__all__ = ["PlaybookResult", "run_playbook"]
