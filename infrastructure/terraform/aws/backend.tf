# Remote state: S3 (versioned, encrypted, public access blocked) with DynamoDB locking.
# Both are created once per account by scripts/setup-aws-backend.sh.
#
# The state key is per environment and is given at init time, so one root serves every environment:
#   terraform init -backend-config="key=aipx/dev/terraform.tfstate"
#   terraform init -reconfigure -backend-config="key=aipx/production/terraform.tfstate"
terraform {
  backend "s3" {
    bucket         = "aipx-terraform-state"
    key            = "aipx/dev/terraform.tfstate"
    region         = "ap-northeast-2"
    dynamodb_table = "aipx-terraform-locks"
    encrypt        = true
  }
}
