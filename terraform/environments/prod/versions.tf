terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, region and dynamodb_table (the lock table) come from
  # the backend file that setup-backend.sh / deploy-infrastructure.sh generate
  # (-backend-config=...). One state object per environment.
  backend "s3" {
    key     = "environments/prod/terraform.tfstate"
    encrypt = true
  }
}
