# One region's VPN nodes: a VPC with public subnets across availability zones, one security group
# (SSH from admin CIDRs only; the VPN ports over TCP and UDP from vpn_ingress_cidrs), a key pair,
# N hardened instances and an Elastic IP each. Providers are configured by the root module.

locals {
  common_tags = merge(var.tags, {
    role         = "vpn-node"
    location_tag = var.location_tag
    region_tier  = var.region_tier
  })

  azs      = sort(data.aws_availability_zones.this.names)
  ami_id   = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  key_name = var.create_key_pair ? aws_key_pair.this[0].key_name : var.key_name
  names    = [for index in range(var.node_count) : "${var.name_prefix}-${var.location_tag}-${index + 1}"]

  ssh_rules = { for cidr in var.admin_cidrs : "ssh-${cidr}" => cidr }
  vpn_rules = {
    for rule in setproduct(var.vpn_ports, ["tcp", "udp"], var.vpn_ingress_cidrs) :
    "${rule[1]}-${rule[0]}-${rule[2]}" => { port = rule[0], protocol = rule[1], cidr = rule[2] }
  }
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

# VPC flow logs are deliberately off: on a VPN node they would record every customer's connections
# (source address, destination, bytes), which the service promises not to keep.
resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:No flow logs on purpose: they would log customers' connection metadata (privacy promise).
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}" })
}

# Take every rule away from the VPC's default security group: nothing may use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}" })
}

resource "aws_subnet" "public" {
  count = length(var.availability_zone_suffixes)

  vpc_id            = aws_vpc.this.id
  cidr_block        = cidrsubnet(var.vpc_cidr, var.subnet_newbits, count.index)
  availability_zone = local.azs[count.index]
  # Nodes get Elastic IPs (or an explicit public address per instance), not one per launch.
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}-public-${local.azs[count.index]}" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}-public" })
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

# Firewall ------------------------------------------------------------------------------------------

resource "aws_security_group" "this" {
  name        = "${var.name_prefix}-${var.location_tag}-vpn-node"
  description = "rayfleet VPN nodes: SSH from admin CIDRs, VPN ports from customers"
  vpc_id      = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}-vpn-node" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = local.ssh_rules

  security_group_id = aws_security_group.this.id
  description       = "SSH from an admin network (Ansible worker or bastion)"
  ip_protocol       = "tcp"
  from_port         = var.ssh_port
  to_port           = var.ssh_port
  cidr_ipv4         = each.value

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "vpn" {
  for_each = local.vpn_rules

  security_group_id = aws_security_group.this.id
  description       = "VPN inbound ${upper(each.value.protocol)} ${each.value.port} from customers"
  ip_protocol       = each.value.protocol
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr

  tags = merge(local.common_tags, { Name = each.key })
}

resource "aws_vpc_security_group_egress_rule" "all" {
  #checkov:skip=CKV_AWS_382:A VPN node relays customers' traffic to arbitrary destinations: egress must be open.
  security_group_id = aws_security_group.this.id
  description       = "Customers' traffic to anywhere (the node is their exit), apt and the control API"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(local.common_tags, { Name = "egress-all" })
}

# Nodes ---------------------------------------------------------------------------------------------

resource "aws_key_pair" "this" {
  count = var.create_key_pair ? 1 : 0

  key_name   = "${var.name_prefix}-${var.location_tag}"
  public_key = var.public_key

  tags = merge(local.common_tags, { Name = "${var.name_prefix}-${var.location_tag}" })

  lifecycle {
    precondition {
      condition     = var.public_key != null
      error_message = "create_key_pair = true needs public_key."
    }
  }
}

resource "aws_instance" "this" {
  #checkov:skip=CKV2_AWS_41:Nodes call no AWS API; no instance profile is least privilege.
  #checkov:skip=CKV_AWS_88:A VPN node exists to be reached by customers: it has a public address by design.
  #checkov:skip=CKV_AWS_126:Detailed monitoring is the detailed_monitoring toggle (default on); tests turn it off because the emulator lacks the API.
  count = var.node_count

  ami                    = local.ami_id
  instance_type          = var.instance_type
  key_name               = local.key_name
  subnet_id              = aws_subnet.public[count.index % length(aws_subnet.public)].id
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

    tags = merge(local.common_tags, { Name = local.names[count.index] })
  }

  tags = merge(local.common_tags, { Name = local.names[count.index] })

  lifecycle {
    # A newer Debian image must not replace running nodes (their customers' IPs and state).
    ignore_changes = [ami]
  }
}

resource "aws_eip" "this" {
  count = var.create_eip ? var.node_count : 0

  domain   = "vpc"
  instance = aws_instance.this[count.index].id

  tags = merge(local.common_tags, { Name = local.names[count.index] })

  depends_on = [aws_internet_gateway.this]
}
