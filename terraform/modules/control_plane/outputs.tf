output "host" {
  description = "The control plane as one inventory host: name, ansible_host (the public address), private_ip, region, availability_zone, instance_id, and where its database and load balancer are (null when not created). `python -m terraform_ops inventory` puts it in group control_plane."
  value = {
    name                      = local.name
    ansible_host              = local.public_ip
    private_ip                = aws_instance.this.private_ip
    region                    = data.aws_region.current.name
    availability_zone         = aws_instance.this.availability_zone
    instance_id               = aws_instance.this.id
    db_address                = var.create_managed_postgres ? aws_db_instance.this[0].address : null
    db_port                   = var.create_managed_postgres ? aws_db_instance.this[0].port : null
    db_name                   = var.create_managed_postgres ? var.db_name : null
    db_username               = var.create_managed_postgres ? var.db_username : null
    db_master_user_secret_arn = var.create_managed_postgres ? one(aws_db_instance.this[0].master_user_secret[*].secret_arn) : null
    lb_dns_name               = var.create_load_balancer ? aws_lb.this[0].dns_name : null
  }
}

output "public_ip" {
  description = "The instance's public address (its Elastic IP when create_eip): point the API's DNS name here unless a load balancer is used."
  value       = local.public_ip
}

output "private_ip" {
  description = "The instance's private address in the VPC."
  value       = aws_instance.this.private_ip
}

output "instance_id" {
  description = "ID of the control plane instance."
  value       = aws_instance.this.id
}

output "db_endpoint" {
  description = "host:port of the managed PostgreSQL; null without create_managed_postgres."
  value       = var.create_managed_postgres ? aws_db_instance.this[0].endpoint : null
}

output "db_master_user_secret_arn" {
  description = "Secrets Manager secret holding the generated master password (when db_password is null); null otherwise."
  value       = var.create_managed_postgres ? one(aws_db_instance.this[0].master_user_secret[*].secret_arn) : null
}

output "lb_dns_name" {
  description = "DNS name of the load balancer (point the API's DNS name here, as a CNAME or alias); null without create_load_balancer."
  value       = var.create_load_balancer ? aws_lb.this[0].dns_name : null
}

output "lb_zone_id" {
  description = "Route 53 zone of the load balancer, for an alias record; null without create_load_balancer."
  value       = var.create_load_balancer ? aws_lb.this[0].zone_id : null
}

output "vpc_id" {
  description = "ID of the control plane's VPC."
  value       = aws_vpc.this.id
}

output "subnet_ids" {
  description = "IDs of the public subnets, one per availability zone used."
  value       = aws_subnet.public[*].id
}

output "security_group_id" {
  description = "ID of the instance's security group (the managed database admits this group on 5432)."
  value       = aws_security_group.this.id
}

output "db_security_group_id" {
  description = "ID of the managed database's security group; null without create_managed_postgres."
  value       = var.create_managed_postgres ? aws_security_group.db[0].id : null
}

output "key_name" {
  description = "Name of the EC2 key pair the instance accepts for SSH."
  value       = local.key_name
}
