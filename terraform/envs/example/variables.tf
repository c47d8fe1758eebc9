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
