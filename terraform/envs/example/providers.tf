# Two tiers, two regions: "local" is near the customers, "abroad" is far from their censors.
# Credentials come from the environment (AWS_PROFILE, AWS_ACCESS_KEY_ID…); tests point
# AWS_ENDPOINT_URL at a local emulator, so this file stays the same in tests and production.

provider "aws" {
  alias  = "local"
  region = var.local_region
}

provider "aws" {
  alias  = "abroad"
  region = var.abroad_region
}

# The control plane's region: control_plane_region, or the abroad tier's region when unset.
provider "aws" {
  alias  = "control_plane"
  region = coalesce(var.control_plane_region, var.abroad_region)
}
