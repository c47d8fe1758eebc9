"""Terraform code (modules/, envs/) plus ops/, the operators' Python wrapper around it.

This file only makes ``terraform.ops`` importable (``python -m terraform.ops``); Terraform ignores it.
"""
