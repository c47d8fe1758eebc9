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
