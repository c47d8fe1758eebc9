# Optional managed PostgreSQL (create_managed_postgres): RDS in the private database subnets, reachable
# on 5432 from the control plane's security group only. Encrypted, never publicly accessible, TLS
# enforced. Without db_password the master password is generated and kept by RDS in Secrets Manager
# (never in the Terraform state); output db_master_user_secret_arn says where.

resource "aws_security_group" "db" {
  count = var.create_managed_postgres ? 1 : 0

  name        = "${local.name}-db"
  description = "rayfleet managed PostgreSQL: 5432 from the control plane instance only"
  vpc_id      = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name}-db" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "db_from_instance" {
  count = var.create_managed_postgres ? 1 : 0

  security_group_id            = aws_security_group.db[0].id
  description                  = "PostgreSQL from the control plane instance only"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.this.id

  tags = merge(local.common_tags, { Name = "postgresql-from-control-plane" })
}

resource "aws_db_subnet_group" "this" {
  count = var.create_managed_postgres ? 1 : 0

  name        = "${local.name}-db"
  description = "rayfleet control plane database subnets (no internet route)"
  subnet_ids  = aws_subnet.database[*].id

  tags = merge(local.common_tags, { Name = "${local.name}-db" })

  lifecycle {
    precondition {
      condition     = local.zones >= 2
      error_message = "A managed PostgreSQL needs subnets in at least two availability zones (availability_zone_suffixes)."
    }
  }
}

resource "aws_db_parameter_group" "this" {
  count = var.create_managed_postgres ? 1 : 0

  name        = "${local.name}-postgres${split(".", var.db_engine_version)[0]}"
  family      = "postgres${split(".", var.db_engine_version)[0]}"
  description = "rayfleet control plane PostgreSQL: TLS only"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  tags = merge(local.common_tags, { Name = "${local.name}-db" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_118:Enhanced monitoring needs an IAM role: set db_monitoring_interval and db_monitoring_role_arn to turn it on.
  #checkov:skip=CKV_AWS_157:Multi-AZ doubles the database bill; it is the db_multi_az toggle (default off for a small fleet).
  #checkov:skip=CKV2_AWS_30:No query logging on purpose: statements carry customers' data (payments, Telegram ids).
  #checkov:skip=CKV_AWS_354:Performance Insights uses the account's AWS-managed key unless db_kms_key_id is given.
  count = var.create_managed_postgres ? 1 : 0

  identifier     = "${local.name}-db"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.db_kms_key_id

  db_name                     = var.db_name
  username                    = var.db_username
  password                    = var.db_password
  manage_master_user_password = var.db_password == null ? true : null
  port                        = 5432
  ca_cert_identifier          = var.db_ca_cert_identifier

  db_subnet_group_name   = aws_db_subnet_group.this[0].name
  vpc_security_group_ids = [aws_security_group.db[0].id]
  parameter_group_name   = aws_db_parameter_group.this[0].name
  publicly_accessible    = false
  multi_az               = var.db_multi_az

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  backup_retention_period             = var.db_backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.db_deletion_protection
  skip_final_snapshot                 = var.db_skip_final_snapshot
  final_snapshot_identifier           = var.db_skip_final_snapshot ? null : "${local.name}-db-final"
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  monitoring_interval                 = var.db_monitoring_interval
  monitoring_role_arn                 = var.db_monitoring_role_arn
  performance_insights_enabled        = var.db_performance_insights
  performance_insights_kms_key_id     = var.db_performance_insights ? var.db_kms_key_id : null

  tags = merge(local.common_tags, { Name = "${local.name}-db" })

  lifecycle {
    precondition {
      condition     = var.db_monitoring_interval == 0 || var.db_monitoring_role_arn != null
      error_message = "db_monitoring_interval > 0 needs db_monitoring_role_arn (enhanced monitoring's IAM role)."
    }
  }
}
