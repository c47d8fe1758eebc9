output "nodes" {
  description = "One object per node: name (the control API's node name), public_ip (what customers' links point at), private_ip, region, region_tier, location_tag, availability_zone, instance_id."
  value = [
    for index, instance in aws_instance.this : {
      name              = local.names[index]
      public_ip         = var.create_eip ? aws_eip.this[index].public_ip : instance.public_ip
      private_ip        = instance.private_ip
      region            = data.aws_region.current.name
      region_tier       = var.region_tier
      location_tag      = var.location_tag
      availability_zone = instance.availability_zone
      instance_id       = instance.id
    }
  ]
}

output "vpc_id" {
  description = "ID of the nodes' VPC."
  value       = aws_vpc.this.id
}

output "subnet_ids" {
  description = "IDs of the public subnets, one per availability zone used."
  value       = aws_subnet.public[*].id
}

output "security_group_id" {
  description = "ID of the nodes' security group (add rules for extra inbounds here or through vpn_ports)."
  value       = aws_security_group.this.id
}

output "key_name" {
  description = "Name of the EC2 key pair the nodes accept for SSH."
  value       = local.key_name
}
