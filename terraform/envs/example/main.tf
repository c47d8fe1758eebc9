locals {
  public_key = trimspace(file(pathexpand(var.public_key_path)))
  tags       = merge({ project = "rayfleet", managed_by = "terraform" }, var.tags)
}

module "local_nodes" {
  source = "../../modules/vpn_node"

  providers = {
    aws = aws.local
  }

  name_prefix         = var.name_prefix
  location_tag        = var.local_location_tag
  region_tier         = "local"
  node_count          = var.local_node_count
  ami_id              = var.local_ami_id
  instance_type       = var.instance_type
  admin_cidrs         = var.admin_cidrs
  vpn_ports           = var.vpn_ports
  public_key          = local.public_key
  detailed_monitoring = var.detailed_monitoring
  tags                = local.tags
}

module "abroad_nodes" {
  source = "../../modules/vpn_node"

  providers = {
    aws = aws.abroad
  }

  name_prefix         = var.name_prefix
  location_tag        = var.abroad_location_tag
  region_tier         = "abroad"
  node_count          = var.abroad_node_count
  ami_id              = var.abroad_ami_id
  instance_type       = var.instance_type
  admin_cidrs         = var.admin_cidrs
  vpn_ports           = var.vpn_ports
  public_key          = local.public_key
  detailed_monitoring = var.detailed_monitoring
  tags                = local.tags
}
