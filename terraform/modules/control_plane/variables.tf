# Instance and network ------------------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every resource name; the instance is named <name_prefix>-<name> (its inventory host name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix: 1-31 lowercase letters, digits or '-', starting with a letter or digit."
  }
}

variable "name" {
  description = "Second half of the instance's name (<name_prefix>-<name>), e.g. control."
  type        = string
  default     = "control"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,19}$", var.name))
    error_message = "name: 1-20 lowercase letters, digits or '-', starting with a letter or digit."
  }
}

variable "instance_type" {
  description = "EC2 instance type: it runs the control API, worker, cron and bot, plus PostgreSQL and Redis unless the database is managed."
  type        = string
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type looks like t3.medium."
  }
}

variable "ami_id" {
  description = "AMI of the instance. null looks up the newest official Debian 12 (bookworm) amd64 image of the region."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be null or an AMI id such as ami-0123456789abcdef0."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the control plane's VPC (keep it apart from the nodes' VPCs)."
  type        = string
  default     = "10.70.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR of /24 or larger, e.g. 10.70.0.0/16."
  }
}

variable "availability_zone_suffixes" {
  description = "Availability zones of the subnets, as letters of the region (a, b…). The instance uses the first; the load balancer and the managed database need at least two."
  type        = list(string)
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) >= 1 && length(var.availability_zone_suffixes) <= 6 && length(distinct(var.availability_zone_suffixes)) == length(var.availability_zone_suffixes) && alltrue([for suffix in var.availability_zone_suffixes : can(regex("^[a-z]$", suffix))])
    error_message = "availability_zone_suffixes: 1-6 distinct single letters, e.g. [\"a\", \"b\"]."
  }
}

variable "subnet_newbits" {
  description = "Bits added to vpc_cidr's prefix for each subnet (8 turns a /16 into /24 subnets). Public subnets come first, database subnets after them."
  type        = number
  default     = 8

  validation {
    condition     = var.subnet_newbits >= 1 && var.subnet_newbits <= 8
    error_message = "subnet_newbits must be from 1 to 8."
  }
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs allowed to reach SSH (operators, a bastion). Never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for cidr in var.admin_cidrs : can(cidrhost(cidr, 0)) && !endswith(cidr, "/0")])
    error_message = "admin_cidrs: at least one IPv4 CIDR, none of them /0 (SSH is never open to the world)."
  }
}

variable "ssh_port" {
  description = "TCP port of SSH on the instance."
  type        = number
  default     = 22

  validation {
    condition     = var.ssh_port >= 1 && var.ssh_port <= 65535 && floor(var.ssh_port) == var.ssh_port && !contains([80, 443, 5432, 6379], var.ssh_port)
    error_message = "ssh_port must be a port number (1-65535) other than 80, 443, 5432 (PostgreSQL) and 6379 (Redis)."
  }
}

variable "https_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach HTTPS (443): customers fetching subscriptions, nodes' heartbeats, the bot. Anywhere by default."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for cidr in var.https_ingress_cidrs : can(cidrhost(cidr, 0)) && !strcontains(cidr, ":")])
    error_message = "https_ingress_cidrs: IPv4 CIDRs."
  }
}

variable "https_ingress_ipv6_cidrs" {
  description = "IPv6 CIDRs allowed to reach HTTPS (443). The module's VPC is IPv4-only today: the rule is ready for dual stack."
  type        = list(string)
  default     = ["::/0"]

  validation {
    condition     = alltrue([for cidr in var.https_ingress_ipv6_cidrs : can(cidrhost(cidr, 0)) && strcontains(cidr, ":")])
    error_message = "https_ingress_ipv6_cidrs: IPv6 CIDRs."
  }
}

variable "allow_http_acme" {
  description = "Open port 80 on the instance (from https_ingress_cidrs) for ACME HTTP-01 challenges, when the instance gets its own certificate (e.g. Let's Encrypt)."
  type        = bool
  default     = false
}

variable "create_key_pair" {
  description = "Create an EC2 key pair from public_key. false uses the existing key pair named key_name."
  type        = bool
  default     = true
}

variable "public_key" {
  description = "OpenSSH public key (one line) for the instance's admin user, when create_key_pair is true."
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
  description = "Size of the instance's encrypted gp3 root volume, in GiB (holds PostgreSQL's data unless the database is managed)."
  type        = number
  default     = 30

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 4096
    error_message = "root_volume_size must be from 8 to 4096 GiB."
  }
}

variable "kms_key_id" {
  description = "ARN of a KMS key for the root volume. null uses the account's default EBS key (still encrypted)."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "Enable EC2 detailed (1-minute) CloudWatch monitoring on the instance (billed)."
  type        = bool
  default     = true
}

variable "create_eip" {
  description = "Give the instance an Elastic IP: the API's address (and the source address nodes see for SSH) survives stop/start."
  type        = bool
  default     = true
}

variable "user_data" {
  description = "Optional cloud-init user data (plain text; no secrets: user data is readable from the instance)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource (role and Name are set by the module)."
  type        = map(string)
  default     = {}
}

# Load balancer -------------------------------------------------------------------------------------

variable "create_load_balancer" {
  description = "Put an Application Load Balancer (TLS with an ACM certificate) in front of the instance; the instance then takes 443 from the load balancer only."
  type        = bool
  default     = false
}

variable "lb_certificate_arn" {
  description = "ARN of the ACM certificate for the load balancer's HTTPS listener (required with create_load_balancer)."
  type        = string
  default     = null

  validation {
    condition     = var.lb_certificate_arn == null || can(regex("^arn:aws[a-z-]*:(acm|iam):", var.lb_certificate_arn))
    error_message = "lb_certificate_arn must be an ACM (or IAM server) certificate ARN."
  }
}

variable "lb_ssl_policy" {
  description = "TLS policy of the load balancer's listener (TLS 1.2 and 1.3 only by default)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = startswith(var.lb_ssl_policy, "ELBSecurityPolicy-TLS13-") || startswith(var.lb_ssl_policy, "ELBSecurityPolicy-FS-1-2-")
    error_message = "lb_ssl_policy must allow TLS 1.2+ only (an ELBSecurityPolicy-TLS13-* or ELBSecurityPolicy-FS-1-2-* policy)."
  }
}

variable "lb_health_check_path" {
  description = "Path the load balancer's health check requests over HTTPS (the control API's health endpoint)."
  type        = string
  default     = "/api/v1/health"

  validation {
    condition     = startswith(var.lb_health_check_path, "/")
    error_message = "lb_health_check_path must start with /."
  }
}

variable "lb_deletion_protection" {
  description = "Refuse to delete the load balancer (turn off before a deliberate destroy)."
  type        = bool
  default     = true
}

# Managed PostgreSQL --------------------------------------------------------------------------------

variable "create_managed_postgres" {
  description = "Run PostgreSQL on RDS (private subnets, 5432 from the instance's security group only) instead of on the instance."
  type        = bool
  default     = false
}

variable "db_engine_version" {
  description = "PostgreSQL version on RDS (major, or major.minor); its major also names the parameter group family."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^[0-9]{2}(\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version looks like 16 or 16.4."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the managed PostgreSQL."
  type        = string
  default     = "db.t4g.micro"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class looks like db.t4g.micro."
  }
}

variable "db_allocated_storage" {
  description = "Initial storage of the managed PostgreSQL, in GiB (gp3, encrypted)."
  type        = number
  default     = 20

  validation {
    condition     = var.db_allocated_storage >= 20 && var.db_allocated_storage <= 65536
    error_message = "db_allocated_storage must be from 20 to 65536 GiB."
  }
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB (0 turns autoscaling off)."
  type        = number
  default     = 100

  validation {
    condition     = var.db_max_allocated_storage == 0 || var.db_max_allocated_storage >= 20
    error_message = "db_max_allocated_storage must be 0 or at least 20 GiB."
  }
}

variable "db_name" {
  description = "Name of the database the control API uses."
  type        = string
  default     = "rayfleet"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name: a lowercase identifier (letters, digits, '_'), starting with a letter."
  }
}

variable "db_username" {
  description = "Master user name of the managed PostgreSQL."
  type        = string
  default     = "rayfleet"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_username)) && !contains(["postgres", "admin", "rdsadmin"], var.db_username)
    error_message = "db_username: a lowercase identifier, not a reserved name (postgres, admin, rdsadmin)."
  }
}

variable "db_password" {
  description = "Master password (16+ characters). null (recommended) lets RDS generate it and keep it in Secrets Manager, out of the Terraform state; a given password is stored in the state."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.db_password == null || (length(coalesce(var.db_password, "-")) >= 16 && length(coalesce(var.db_password, "-")) <= 128 && !can(regex("[/@\" ]", coalesce(var.db_password, "-"))))
    error_message = "db_password must be null or 16-128 characters without '/', '@', '\"' or spaces."
  }
}

variable "db_ca_cert_identifier" {
  description = "Certificate authority of the database's TLS certificate (clients verify it with the matching RDS CA bundle). null leaves the choice to RDS (rds-ca-rsa2048-g1 for new instances since 2024)."
  type        = string
  default     = "rds-ca-rsa2048-g1"

  validation {
    condition     = var.db_ca_cert_identifier == null || contains(["rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"], coalesce(var.db_ca_cert_identifier, "-"))
    error_message = "db_ca_cert_identifier must be null or a current RDS CA: rds-ca-rsa2048-g1, rds-ca-rsa4096-g1 or rds-ca-ecc384-g1."
  }
}

variable "db_multi_az" {
  description = "Run the managed PostgreSQL in two availability zones (automatic failover; doubles its cost)."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery) of the managed PostgreSQL."
  type        = number
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be from 1 to 35."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the managed PostgreSQL (turn off before a deliberate destroy)."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Delete the managed PostgreSQL without a final snapshot (<name_prefix>-<name>-db-final). Only for throwaway environments."
  type        = bool
  default     = false
}

variable "db_kms_key_id" {
  description = "ARN of a KMS key for the database's storage and Performance Insights. null uses the account's AWS-managed RDS key (still encrypted)."
  type        = string
  default     = null
}

variable "db_performance_insights" {
  description = "Enable Performance Insights on the managed PostgreSQL (7 days are free)."
  type        = bool
  default     = true
}

variable "db_monitoring_interval" {
  description = "Enhanced monitoring interval in seconds (0 off; 1, 5, 10, 15, 30 or 60). Needs db_monitoring_role_arn."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval)
    error_message = "db_monitoring_interval must be 0, 1, 5, 10, 15, 30 or 60."
  }
}

variable "db_monitoring_role_arn" {
  description = "IAM role RDS uses to publish enhanced monitoring metrics, when db_monitoring_interval > 0."
  type        = string
  default     = null
}
