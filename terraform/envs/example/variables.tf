variable "name_prefix" {
  description = "Prefix of every resource and node name (nodes: <name_prefix>-<location_tag>-<n>)."
  type        = string
  default     = "rf"
}

variable "local_region" {
  description = "AWS region of the local tier (near the customers)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.local_region))
    error_message = "local_region must be an AWS region name such as me-central-1."
  }
}

variable "abroad_region" {
  description = "AWS region of the abroad tier."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.abroad_region))
    error_message = "abroad_region must be an AWS region name such as eu-central-1."
  }
}

variable "local_location_tag" {
  description = "The control API's location_tag of the local tier's nodes."
  type        = string
  default     = "local"
}

variable "abroad_location_tag" {
  description = "The control API's location_tag of the abroad tier's nodes."
  type        = string
  default     = "abroad"
}

variable "local_node_count" {
  description = "Number of nodes in the local tier."
  type        = number
  default     = 1
}

variable "abroad_node_count" {
  description = "Number of nodes in the abroad tier."
  type        = number
  default     = 2
}

variable "local_ami_id" {
  description = "AMI of the local tier's nodes; null finds the newest Debian 12 image of local_region."
  type        = string
  default     = null
}

variable "abroad_ami_id" {
  description = "AMI of the abroad tier's nodes; null finds the newest Debian 12 image of abroad_region."
  type        = string
  default     = null
}

variable "instance_type" {
  description = "EC2 instance type of every node."
  type        = string
  default     = "t3.small"
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs allowed to reach SSH on the nodes (the Ansible worker, a bastion)."
  type        = list(string)
}

variable "vpn_ports" {
  description = "VPN inbound ports, opened for TCP and UDP from anywhere (match the nodes' inbounds in the control API)."
  type        = list(number)
  default     = [443]
}

variable "public_key_path" {
  description = "Path of the OpenSSH public key the nodes accept for SSH (the private half stays with the operators)."
  type        = string
}

variable "detailed_monitoring" {
  description = "EC2 detailed monitoring on every node."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# Control plane -------------------------------------------------------------------------------------

variable "create_control_plane" {
  description = "Build the control plane (modules/control_plane) too: one instance with an Elastic IP for the API, worker, cron and bot."
  type        = bool
  default     = false
}

variable "control_plane_region" {
  description = "AWS region of the control plane; null puts it in abroad_region."
  type        = string
  default     = null

  validation {
    condition     = var.control_plane_region == null || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", coalesce(var.control_plane_region, "x")))
    error_message = "control_plane_region must be null or an AWS region name such as eu-central-1."
  }
}

variable "control_plane_instance_type" {
  description = "EC2 instance type of the control plane."
  type        = string
  default     = "t3.medium"
}

variable "control_plane_ami_id" {
  description = "AMI of the control plane; null finds the newest Debian 12 image of its region."
  type        = string
  default     = null
}

variable "control_plane_allow_http_acme" {
  description = "Open port 80 on the control plane for ACME HTTP-01 challenges (a Let's Encrypt certificate on the instance)."
  type        = bool
  default     = false
}

variable "control_plane_create_load_balancer" {
  description = "Put an Application Load Balancer with an ACM certificate in front of the control plane."
  type        = bool
  default     = false
}

variable "control_plane_lb_certificate_arn" {
  description = "ACM certificate ARN for the load balancer (required with control_plane_create_load_balancer)."
  type        = string
  default     = null
}

variable "control_plane_create_managed_postgres" {
  description = "Run the control plane's PostgreSQL on RDS (password generated and kept in Secrets Manager) instead of on the instance."
  type        = bool
  default     = false
}
