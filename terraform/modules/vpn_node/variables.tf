variable "name_prefix" {
  description = "Prefix of every resource and node name; nodes are named <name_prefix>-<location_tag>-<n> (the control API's node name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix: 1-31 lowercase letters, digits or '-', starting with a letter or digit."
  }
}

variable "location_tag" {
  description = "The control API's location_tag of these nodes (plans are sold per location_tag), e.g. abroad."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,31}$", var.location_tag))
    error_message = "location_tag: 1-32 lowercase letters, digits, '-' or '_' (a slug the control API accepts)."
  }
}

variable "region_tier" {
  description = "Which tier these nodes serve: local (near the customers) or abroad. Tagged on every resource."
  type        = string

  validation {
    condition     = contains(["local", "abroad"], var.region_tier)
    error_message = "region_tier must be local or abroad."
  }
}

variable "node_count" {
  description = "How many VPN nodes (instances with an Elastic IP each) to run."
  type        = number
  default     = 1

  validation {
    condition     = var.node_count >= 0 && var.node_count <= 200 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 0 to 200."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the nodes."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type looks like t3.small."
  }
}

variable "ami_id" {
  description = "AMI of the nodes. null looks up the newest official Debian 12 (bookworm) amd64 image of the region."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be null or an AMI id such as ami-0123456789abcdef0."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the nodes' VPC."
  type        = string
  default     = "10.60.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR of /24 or larger, e.g. 10.60.0.0/16."
  }
}

variable "availability_zone_suffixes" {
  description = "Availability zones of the public subnets, as letters of the region (a, b…); nodes go round-robin over them. Naming them pins the set: a zone AWS adds later never moves a subnet."
  type        = list(string)
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) >= 1 && length(var.availability_zone_suffixes) <= 6 && length(distinct(var.availability_zone_suffixes)) == length(var.availability_zone_suffixes) && alltrue([for suffix in var.availability_zone_suffixes : can(regex("^[a-z]$", suffix))])
    error_message = "availability_zone_suffixes: 1-6 distinct single letters, e.g. [\"a\", \"b\"]."
  }
}

variable "subnet_newbits" {
  description = "Bits added to vpc_cidr's prefix for each subnet (8 turns a /16 into /24 subnets)."
  type        = number
  default     = 8

  validation {
    condition     = var.subnet_newbits >= 1 && var.subnet_newbits <= 8
    error_message = "subnet_newbits must be from 1 to 8."
  }
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs allowed to reach SSH (the Ansible worker, a bastion). Never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for cidr in var.admin_cidrs : can(cidrhost(cidr, 0)) && !endswith(cidr, "/0")])
    error_message = "admin_cidrs: at least one IPv4 CIDR, none of them /0 (SSH is never open to the world)."
  }
}

variable "ssh_port" {
  description = "TCP port of SSH on the nodes."
  type        = number
  default     = 22

  validation {
    condition     = var.ssh_port >= 1 && var.ssh_port <= 65535 && floor(var.ssh_port) == var.ssh_port
    error_message = "ssh_port must be a port number (1-65535)."
  }
}

variable "vpn_ports" {
  description = "Ports of the VPN inbounds, opened for both TCP and UDP to vpn_ingress_cidrs (match the nodes' inbounds in the control API)."
  type        = list(number)
  default     = [443]

  validation {
    condition     = length(var.vpn_ports) > 0 && alltrue([for port in var.vpn_ports : port >= 1 && port <= 65535 && floor(port) == port])
    error_message = "vpn_ports: at least one port number (1-65535)."
  }
}

variable "vpn_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the VPN ports: the customers, i.e. anywhere by default."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.vpn_ingress_cidrs) > 0 && alltrue([for cidr in var.vpn_ingress_cidrs : can(cidrhost(cidr, 0))])
    error_message = "vpn_ingress_cidrs: at least one IPv4 CIDR."
  }
}

variable "create_key_pair" {
  description = "Create an EC2 key pair from public_key. false uses the existing key pair named key_name."
  type        = bool
  default     = true
}

variable "public_key" {
  description = "OpenSSH public key (one line) for the nodes' admin user, when create_key_pair is true."
  type        = string
  default     = null

  validation {
    condition     = var.public_key == null || can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.public_key)))
    error_message = "public_key must be an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa)."
  }
}

variable "key_name" {
  description = "Name of an existing EC2 key pair, when create_key_pair is false."
  type        = string
  default     = null
}

variable "root_volume_size" {
  description = "Size of each node's encrypted gp3 root volume, in GiB."
  type        = number
  default     = 16

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 1024
    error_message = "root_volume_size must be from 8 to 1024 GiB."
  }
}

variable "kms_key_id" {
  description = "ARN of a KMS key for the root volumes. null uses the account's default EBS key (still encrypted)."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "Enable EC2 detailed (1-minute) CloudWatch monitoring on the nodes (billed per instance)."
  type        = bool
  default     = true
}

variable "create_eip" {
  description = "Give every node an Elastic IP, so its public_ip (what customers' links point at) survives stop/start."
  type        = bool
  default     = true
}

variable "user_data" {
  description = "Optional cloud-init user data for the nodes (plain text; no secrets: user data is readable from the instance)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource (role, location_tag, region_tier and Name are set by the module)."
  type        = map(string)
  default     = {}
}
