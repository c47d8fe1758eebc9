"""rayfleet's operator wrapper around Terraform: plan/apply/destroy with progress, then the nodes
Terraform built become an Ansible inventory and rows in the control API.

    python -m terraform_ops --help

Why tftest and not python-terraform
-----------------------------------
python-terraform was requested, but its last release (0.10.1, 2019) predates Terraform 1.x and breaks
on the Terraform 1.11 we run: ``destroy`` passes the removed ``-force``; ``apply`` sends
``-auto-approve=false`` and then waits for an answer on a closed stdin; ``plan`` always adds
``-detailed-exitcode`` and reports pending changes as error 2; ``capture_output=False`` crashes under
pytest. It works only when every flag is overridden by hand, i.e. when it does nothing for us.

tftest (1.8, maintained by the Google Cloud Foundation Fabric team) runs the real binary, streams its
output line by line through the ``tftest`` logger (which is how the progress is shown here), raises
``TerraformTestError`` on failure and parses ``show -json`` / ``output -json``. Its traps, handled in
:mod:`.runner`: a Python ``False`` becomes ``-var x=False`` (variables go through ``*.tfvars`` files,
never ``tf_vars``); ``setup()`` deletes ``.terraform`` and the local state when the object is garbage
collected (we call ``init`` directly, never ``setup``); exit codes other than 1 and 11 are returned,
not raised (checked here).
"""
