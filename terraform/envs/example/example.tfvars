# Copy to terraform.tfvars (git-ignored) and edit. Addresses below are documentation ranges (RFC 5737).
name_prefix   = "rf"
local_region  = "me-central-1"
abroad_region = "eu-central-1"

local_location_tag  = "local"
abroad_location_tag = "abroad"
local_node_count    = 1
abroad_node_count   = 2

# SSH only from the Ansible worker / bastion.
admin_cidrs = ["198.51.100.0/24", "203.0.113.10/32"]
# The inbounds the nodes serve (TCP and UDP are opened for each).
vpn_ports = [443, 8443]

# The public half of the fleet's SSH key (make one with: ssh-keygen -t ed25519 -f ~/.ssh/rayfleet_fleet).
public_key_path = "~/.ssh/rayfleet_fleet.pub"

instance_type       = "t3.small"
detailed_monitoring = true

tags = {
  owner = "ops"
}
