terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Production: keep state remote and locked, e.g.
  # backend "s3" { bucket = "…" key = "rayfleet/example.tfstate" region = "…" use_lockfile = true }
}
