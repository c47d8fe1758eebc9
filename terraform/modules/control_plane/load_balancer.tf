# Optional Application Load Balancer (create_load_balancer): TLS with an ACM certificate on 443, then
# HTTPS to the instance, which then admits 443 from the load balancer only.

resource "aws_security_group" "lb" {
  count = var.create_load_balancer ? 1 : 0

  name        = "${local.name}-lb"
  description = "rayfleet control plane load balancer: HTTPS from customers and nodes, HTTPS to the instance"
  vpc_id      = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name}-lb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "lb_https_ipv4" {
  for_each = var.create_load_balancer ? toset(var.https_ingress_cidrs) : toset([])

  security_group_id = aws_security_group.lb[0].id
  description       = "HTTPS: the control API, subscriptions and node heartbeats"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = merge(local.common_tags, { Name = "https-${each.value}" })
}

resource "aws_vpc_security_group_ingress_rule" "lb_https_ipv6" {
  for_each = var.create_load_balancer ? toset(var.https_ingress_ipv6_cidrs) : toset([])

  security_group_id = aws_security_group.lb[0].id
  description       = "HTTPS over IPv6: the control API, subscriptions and node heartbeats"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv6         = each.value

  tags = merge(local.common_tags, { Name = "https-${each.value}" })
}

resource "aws_vpc_security_group_egress_rule" "lb_to_instance" {
  count = var.create_load_balancer ? 1 : 0

  security_group_id            = aws_security_group.lb[0].id
  description                  = "HTTPS to the control plane instance (requests and health checks)"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.this.id

  tags = merge(local.common_tags, { Name = "https-to-instance" })
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:No access logs on purpose: they would keep customers' addresses and the secret tokens in /sub/<token> URLs.
  #checkov:skip=CKV2_AWS_28:No WAF: a web ACL is billed per rule and request; the control API rate-limits and authenticates itself.
  count = var.create_load_balancer ? 1 : 0

  name                       = substr("${local.name}-cp", 0, 32)
  internal                   = false
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.lb[0].id]
  subnets                    = aws_subnet.public[*].id
  drop_invalid_header_fields = true
  enable_deletion_protection = var.lb_deletion_protection
  idle_timeout               = 60

  tags = merge(local.common_tags, { Name = local.name })

  lifecycle {
    precondition {
      condition     = local.zones >= 2
      error_message = "A load balancer needs subnets in at least two availability zones (availability_zone_suffixes)."
    }
  }
}

resource "aws_lb_target_group" "this" {
  count = var.create_load_balancer ? 1 : 0

  name        = substr("${local.name}-cp", 0, 32)
  port        = 443
  protocol    = "HTTPS"
  target_type = "instance"
  vpc_id      = aws_vpc.this.id

  health_check {
    enabled             = true
    protocol            = "HTTPS"
    path                = var.lb_health_check_path
    matcher             = "200"
    interval            = 30
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = merge(local.common_tags, { Name = local.name })
}

resource "aws_lb_target_group_attachment" "this" {
  count = var.create_load_balancer ? 1 : 0

  target_group_arn = aws_lb_target_group.this[0].arn
  target_id        = aws_instance.this.id
  port             = 443
}

resource "aws_lb_listener" "https" {
  count = var.create_load_balancer ? 1 : 0

  load_balancer_arn = aws_lb.this[0].arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.lb_ssl_policy
  certificate_arn   = var.lb_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[0].arn
  }

  tags = merge(local.common_tags, { Name = local.name })

  lifecycle {
    precondition {
      condition     = var.lb_certificate_arn != null
      error_message = "create_load_balancer = true needs lb_certificate_arn (an ACM certificate for the API's name)."
    }
  }
}
