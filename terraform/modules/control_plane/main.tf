# The rayfleet control plane in one region: a VPC with public subnets across availability zones, one
# hardened instance (control API, worker, cron, bot; PostgreSQL and Redis on it unless the managed
# database is used) with an Elastic IP, its security group (HTTPS from anywhere, SSH from admin CIDRs,
# PostgreSQL and Redis never public), and behind create_* toggles an Application Load Balancer and a
# managed PostgreSQL (RDS) in private subnets. Providers are configured by the root module.

locals {
  common_tags = merge(var.tags, {
    role = "control-plane"
  })

  name     = "${var.name_prefix}-${var.name}"
  azs      = sort(data.aws_availability_zones.this.names)
  ami_id   = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  key_name = var.create_key_pair ? aws_key_pair.this[0].key_name : var.key_name
  zones    = length(var.availability_zone_suffixes)

  ssh_rules = { for cidr in var.admin_cidrs : "ssh-${cidr}" => cidr }
  # HTTPS reaches the instance from the customers and nodes directly, or only through the load balancer.
  https_ipv4_rules = var.create_load_balancer ? {} : { for cidr in var.https_ingress_cidrs : "https-${cidr}" => cidr }
  https_ipv6_rules = var.create_load_balancer ? {} : { for cidr in var.https_ingress_ipv6_cidrs : "https-${cidr}" => cidr }
  http_ipv4_rules  = var.allow_http_acme ? { for cidr in var.https_ingress_cidrs : "http-${cidr}" => cidr } : {}
  http_ipv6_rules  = var.allow_http_acme ? { for cidr in var.https_ingress_ipv6_cidrs : "http-${cidr}" => cidr } : {}

  public_ip = var.create_eip ? aws_eip.this[0].public_ip : aws_instance.this.public_ip
}

data "aws_region" "current" {}

data "aws_availability_zones" "this" {
  filter {
    name   = "zone-name"
    values = [for suffix in var.availability_zone_suffixes : "${data.aws_region.current.name}${suffix}"]
  }
}

# The newest official Debian 12 image (owner: Debian's AWS account), only when no ami_id is given.
data "aws_ami" "debian" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = ["136693071363"]

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# Network -------------------------------------------------------------------------------------------

# No VPC flow logs: customers fetch their subscriptions (/sub/<token>) from this VPC, and flow logs
# would keep their addresses, which the service promises not to keep (the same choice as vpn_node).
resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:No flow logs on purpose: they would log customers' addresses fetching subscriptions (privacy promise).
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.common_tags, { Name = local.name })
}

# Take every rule away from the VPC's default security group: nothing may use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = local.name })
}

resource "aws_subnet" "public" {
  count = local.zones

  vpc_id            = aws_vpc.this.id
  cidr_block        = cidrsubnet(var.vpc_cidr, var.subnet_newbits, count.index)
  availability_zone = local.azs[count.index]
  # The instance gets an Elastic IP (or an explicit public address), not one per launch.
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${local.name}-public-${local.azs[count.index]}" })

  lifecycle {
    precondition {
      condition     = pow(2, var.subnet_newbits) >= 2 * local.zones
      error_message = "subnet_newbits too small: vpc_cidr must hold a public and a database subnet per availability zone."
    }
  }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name}-public" })
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# Database subnets sit after the public ones in vpc_cidr and keep the VPC's main route table
# (local routes only): the managed PostgreSQL has no way to or from the internet.
resource "aws_subnet" "database" {
  count = var.create_managed_postgres ? local.zones : 0

  vpc_id                  = aws_vpc.this.id
  cidr_block              = cidrsubnet(var.vpc_cidr, var.subnet_newbits, local.zones + count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${local.name}-database-${local.azs[count.index]}" })
}

# Firewall of the instance ----------------------------------------------------------------------------

resource "aws_security_group" "this" {
  name        = "${local.name}-control-plane"
  description = "rayfleet control plane: HTTPS from customers and nodes, SSH from admin CIDRs; never PostgreSQL or Redis"
  vpc_id      = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name}-control-plane" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = local.ssh_rules

  security_group_id = aws_security_group.this.id
  description       = "SSH from an admin network (operators, a bastion)"
  ip_protocol       = "tcp"
  from_port         = var.ssh_port
  to_port           = var.ssh_port
  cidr_ipv4         = each.value

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "https_ipv4" {
  for_each = local.https_ipv4_rules

  security_group_id = aws_security_group.this.id
  description       = "HTTPS: the control API, subscriptions and node heartbeats"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "https_ipv6" {
  for_each = local.https_ipv6_rules

  security_group_id = aws_security_group.this.id
  description       = "HTTPS over IPv6: the control API, subscriptions and node heartbeats"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv6         = each.value

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "https_from_lb" {
  count = var.create_load_balancer ? 1 : 0

  security_group_id            = aws_security_group.this.id
  description                  = "HTTPS from the load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.lb[0].id

  tags = merge(local.common_tags, { Name = "https-from-lb" })
}

resource "aws_vpc_security_group_ingress_rule" "http_acme_ipv4" {
  #checkov:skip=CKV_AWS_260:Port 80 opens only with allow_http_acme (default off), for ACME HTTP-01 challenges from any CA vantage point.
  for_each = local.http_ipv4_rules

  security_group_id = aws_security_group.this.id
  description       = "HTTP for ACME HTTP-01 certificate challenges (and a redirect to HTTPS)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "http_acme_ipv6" {
  for_each = local.http_ipv6_rules

  security_group_id = aws_security_group.this.id
  description       = "HTTP over IPv6 for ACME HTTP-01 certificate challenges"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv6         = each.value

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_egress_rule" "all" {
  #checkov:skip=CKV_AWS_382:The worker runs Ansible over SSH to nodes anywhere and reaches apt, Telegram and ACME: egress must be open.
  security_group_id = aws_security_group.this.id
  description       = "SSH to the VPN nodes, apt, the Telegram Bot API, ACME, the managed database"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(local.common_tags, { Name = "egress-all" })
}

# The instance --------------------------------------------------------------------------------------

resource "aws_key_pair" "this" {
  count = var.create_key_pair ? 1 : 0

  key_name   = local.name
  public_key = var.public_key

  tags = merge(local.common_tags, { Name = local.name })

  lifecycle {
    precondition {
      condition     = var.public_key != null
      error_message = "create_key_pair = true needs public_key."
    }
  }
}

resource "aws_instance" "this" {
  #checkov:skip=CKV2_AWS_41:The control plane calls no AWS API (the managed database uses a password); no instance profile is least privilege.
  #checkov:skip=CKV_AWS_88:The control API serves customers and nodes from the internet: a public address by design.
  #checkov:skip=CKV_AWS_126:Detailed monitoring is the detailed_monitoring toggle (default on); tests turn it off because the emulator lacks the API.
  ami                    = local.ami_id
  instance_type          = var.instance_type
  key_name               = local.key_name
  subnet_id              = aws_subnet.public[0].id
  vpc_security_group_ids = [aws_security_group.this.id]
  # With an Elastic IP, leave it unset: AWS reports the EIP as the instance's public address.
  associate_public_ip_address = var.create_eip ? null : true
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  user_data                   = var.user_data

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true

    tags = merge(local.common_tags, { Name = local.name })
  }

  tags = merge(local.common_tags, { Name = local.name })

  lifecycle {
    # A newer Debian image must not replace the running control plane (its database, its address).
    ignore_changes = [ami]
  }
}

resource "aws_eip" "this" {
  count = var.create_eip ? 1 : 0

  domain   = "vpc"
  instance = aws_instance.this.id

  tags = merge(local.common_tags, { Name = local.name })

  depends_on = [aws_internet_gateway.this]
}
