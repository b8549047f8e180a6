# A vault and its keys, managed by the MCKO provider. Keystores and distributions come with the keystore API.
#
# The provider reads its connection from the environment when the block leaves it out:
#   MCKO_ADDR=localhost:7443 MCKO_CA_CERT=~/.mcko/tls/ca.pem \
#   MCKO_CLIENT_CERT=~/.mcko/admin.pem MCKO_CLIENT_KEY=~/.mcko/admin.key terraform apply

terraform {
  required_providers {
    mcko = {
      source = "registry.terraform.io/mcko/mcko"
    }
  }
}

provider "mcko" {}

resource "mcko_vault" "payments" {
  name         = "payments"
  display_name = "Payments"
  description  = "Keys of the payments platform"
}

# An AES key for envelope encryption, rotated every 30 days.
resource "mcko_key" "data" {
  vault           = mcko_vault.payments.id
  name            = "data-key"
  algorithm       = "AES_256"
  rotation_period = "720h"
  labels = {
    env  = "prod"
    team = "payments"
  }
}

# A signing key that is kept but no longer used for new signatures.
resource "mcko_key" "legacy_signing" {
  vault     = mcko_vault.payments.id
  name      = "legacy-signing"
  algorithm = "EC_P256"
  state     = "DEACTIVATED"
  labels = {
    env = "prod"
  }
}

data "mcko_key" "data" {
  id = mcko_key.data.id
}

data "mcko_keys" "prod_active" {
  vault  = mcko_vault.payments.id
  state  = "ACTIVE"
  labels = { env = "prod" }
  # Read after the keys exist.
  depends_on = [mcko_key.data, mcko_key.legacy_signing]
}

output "data_key_id" {
  value = mcko_key.data.id
}

output "data_key_kcv" {
  value = data.mcko_key.data.kcv
}

output "prod_active_keys" {
  value = data.mcko_keys.prod_active.ids
}
