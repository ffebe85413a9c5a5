#!/usr/bin/env bash
# Create the Terraform remote state backend of AIPX, once per AWS account. Safe to run again: every step
# checks what exists and only creates or corrects what is missing.
#
#   S3 bucket      aipx-terraform-state   versioning, SSE (AES256), public access blocked, TLS-only policy
#   DynamoDB table aipx-terraform-locks   LockID hash key, on-demand billing, point-in-time recovery
#
# Usage: scripts/setup-aws-backend.sh [--region ap-northeast-2] [--bucket NAME] [--table NAME]
# Needs the AWS CLI v2 and credentials allowed to manage S3 and DynamoDB (aws sts get-caller-identity).
set -euo pipefail

REGION="${AWS_REGION:-ap-northeast-2}"
BUCKET="aipx-terraform-state"
TABLE="aipx-terraform-locks"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --region) REGION="${2:?--region needs a value}"; shift 2 ;;
    --bucket) BUCKET="${2:?--bucket needs a value}"; shift 2 ;;
    --table) TABLE="${2:?--table needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() { printf '    ERROR: %s\n' "$*" >&2; exit 1; }

step "Checking the AWS CLI and credentials"
command -v aws >/dev/null 2>&1 || fail "the AWS CLI is not installed (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)"
ACCOUNT=$(aws sts get-caller-identity --query Account --output text 2>/dev/null) \
  || fail "no valid AWS credentials: run 'aws configure' or export AWS_PROFILE / AWS_ACCESS_KEY_ID"
ok "account ${ACCOUNT}, region ${REGION}"

step "S3 bucket ${BUCKET}"
if aws s3api head-bucket --bucket "$BUCKET" 2>/dev/null; then
  ok "exists (kept)"
else
  if [ "$REGION" = "us-east-1" ]; then
    aws s3api create-bucket --bucket "$BUCKET" --region "$REGION" >/dev/null
  else
    aws s3api create-bucket --bucket "$BUCKET" --region "$REGION" \
      --create-bucket-configuration "LocationConstraint=${REGION}" >/dev/null \
      || fail "could not create ${BUCKET} (bucket names are global: is it owned by another account? use --bucket)"
  fi
  aws s3api wait bucket-exists --bucket "$BUCKET"
  ok "created"
fi

aws s3api put-bucket-versioning --bucket "$BUCKET" --versioning-configuration Status=Enabled
ok "versioning enabled"

aws s3api put-bucket-encryption --bucket "$BUCKET" --server-side-encryption-configuration \
  '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"},"BucketKeyEnabled":true}]}'
ok "default encryption AES256"

aws s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
  BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
ok "public access blocked"

aws s3api put-bucket-policy --bucket "$BUCKET" --policy "$(cat <<JSON
{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*",
 "Action":"s3:*","Resource":["arn:aws:s3:::${BUCKET}","arn:aws:s3:::${BUCKET}/*"],
 "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}
JSON
)"
ok "TLS-only bucket policy"

step "DynamoDB table ${TABLE}"
if aws dynamodb describe-table --table-name "$TABLE" --region "$REGION" >/dev/null 2>&1; then
  ok "exists (kept)"
else
  aws dynamodb create-table --table-name "$TABLE" --region "$REGION" \
    --attribute-definitions AttributeName=LockID,AttributeType=S \
    --key-schema AttributeName=LockID,KeyType=HASH \
    --billing-mode PAY_PER_REQUEST \
    --sse-specification Enabled=true \
    --tags Key=Project,Value=aipx Key=ManagedBy,Value=setup-aws-backend >/dev/null
  ok "created; waiting until it is active"
  aws dynamodb wait table-exists --table-name "$TABLE" --region "$REGION"
  ok "active"
fi
aws dynamodb update-continuous-backups --table-name "$TABLE" --region "$REGION" \
  --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null
ok "point-in-time recovery enabled"

step "Done"
cat <<EOF
    Terraform backend ready: s3://${BUCKET} (state), ${TABLE} (locks), region ${REGION}.
    Next:
      cd infrastructure/terraform/aws
      terraform init -backend-config="key=aipx/dev/terraform.tfstate"
EOF
