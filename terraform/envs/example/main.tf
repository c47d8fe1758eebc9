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

# The control API, worker, cron and bot on one instance (see modules/control_plane/README.md); only
# with create_control_plane. Its output feeds the inventory's control_plane group.
module "control_plane" {
  source = "../../modules/control_plane"
  count  = var.create_control_plane ? 1 : 0

  providers = {
    aws = aws.control_plane
  }

  name_prefix             = var.name_prefix
  instance_type           = var.control_plane_instance_type
  ami_id                  = var.control_plane_ami_id
  admin_cidrs             = var.admin_cidrs
  public_key              = local.public_key
  allow_http_acme         = var.control_plane_allow_http_acme
  create_load_balancer    = var.control_plane_create_load_balancer
  lb_certificate_arn      = var.control_plane_lb_certificate_arn
  create_managed_postgres = var.control_plane_create_managed_postgres
  detailed_monitoring     = var.detailed_monitoring
  tags                    = local.tags
}
