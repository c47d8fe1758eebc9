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

# The control plane (API, worker, cron, bot) on one instance with an Elastic IP, in abroad_region
# unless control_plane_region says otherwise. PostgreSQL and Redis run on it and are never public.
create_control_plane = true
# control_plane_region                  = "eu-west-1"
# control_plane_allow_http_acme         = true   # port 80 for a Let's Encrypt certificate on the instance
# control_plane_create_load_balancer    = true   # an ALB in front (≈ USD 20/month), with:
# control_plane_lb_certificate_arn      = "arn:aws:acm:eu-central-1:111122223333:certificate/…"
# control_plane_create_managed_postgres = true   # RDS PostgreSQL instead of the instance's own

tags = {
  owner = "ops"
}
