output "nodes" {
  description = "Every node of both tiers: name, public_ip, private_ip, region, region_tier, location_tag, availability_zone, instance_id. `python -m terraform_ops inventory` turns it into an Ansible inventory."
  value       = concat(module.local_nodes.nodes, module.abroad_nodes.nodes)
}

output "security_group_ids" {
  description = "The nodes' security group per tier."
  value = {
    local  = module.local_nodes.security_group_id
    abroad = module.abroad_nodes.security_group_id
  }
}

output "control_plane" {
  description = "The control plane host (name, ansible_host, private_ip, region, instance_id, db_address/db_port, lb_dns_name…), or null without create_control_plane. `python -m terraform_ops inventory` puts it in group control_plane."
  value       = var.create_control_plane ? module.control_plane[0].host : null
}
