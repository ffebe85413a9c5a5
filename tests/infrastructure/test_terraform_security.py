"""Security properties of the Terraform: no store port reachable from the internet, private buckets only,
encryption at rest, least-privilege security group flows."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infrastructure.conftest import (
    MODULES,
    TERRAFORM_DIR,
    EvalLocals,
    load_hcl,
    module_resources,
    tf_files,
)

# PostgreSQL, Redis, Kafka (plaintext, TLS, SASL/SCRAM, IAM), ZooKeeper.
STORE_PORTS = {5432, 6379, 9092, 9094, 9096, 9098, 2181}
ANYWHERE = {"0.0.0.0/0", "::/0"}
SG_RULE_TYPES = (
    "aws_vpc_security_group_ingress_rule",
    "aws_vpc_security_group_egress_rule",
    "aws_security_group_rule",
)


@pytest.fixture(scope="module")
def sg_locals(eval_locals: EvalLocals) -> dict[str, Any]:
    return eval_locals(MODULES / "security_groups", ["ports", "groups", "flows", "https_egress"], {})


def _port(value: Any, ports: dict[str, int]) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\$\{local\.ports\.([a-z_]+)\}", str(value))
    if match:
        return ports[match.group(1)]
    match = re.fullmatch(r"\$\{local\.ports\[each\.value\.port\]\}", str(value))
    if match:
        raise LookupError("port chosen per flow")  # group-to-group rules, checked from the flows table
    raise AssertionError(f"cannot resolve port {value!r}")


def _cidrs(body: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for key in ("cidr_ipv4", "cidr_ipv6", "cidr_blocks", "ipv6_cidr_blocks"):
        value = body.get(key)
        if isinstance(value, list):
            found |= {str(v) for v in value}
        elif value is not None:
            found.add(str(value))
    return found


def test_no_security_group_opens_a_store_port_to_the_internet(sg_locals: dict[str, Any]) -> None:
    ports: dict[str, int] = sg_locals["ports"]
    checked = 0
    for path in tf_files():
        parsed = load_hcl(path)
        for block in parsed.get("resource", []):
            for rtype, instances in block.items():
                bodies: list[dict[str, Any]] = []
                if rtype in SG_RULE_TYPES:
                    bodies = list(instances.values())
                elif rtype == "aws_security_group":
                    for body in instances.values():
                        bodies += body.get("ingress", []) + body.get("egress", [])
                for body in bodies:
                    checked += 1
                    if not _cidrs(body) & ANYWHERE:
                        continue
                    where = f"{path.relative_to(TERRAFORM_DIR)} {rtype}"
                    protocol = str(body.get("ip_protocol", body.get("protocol", "tcp")))
                    assert protocol not in {"-1", "all"}, f"{where}: all protocols open to the internet"
                    low = _port(body["from_port"], ports)
                    high = _port(body["to_port"], ports)
                    opened = set(range(low, high + 1))
                    assert not opened & STORE_PORTS, (
                        f"{where}: store port(s) {opened & STORE_PORTS} open to anywhere"
                    )
    assert checked >= 4, "no security group rule found: the scan is not looking at the right files"


def test_internet_facing_cidr_rules_are_https_only(sg_locals: dict[str, Any]) -> None:
    egress = module_resources("security_groups", "aws_vpc_security_group_egress_rule")
    https = egress["https"]
    assert https["cidr_ipv4"] == "0.0.0.0/0"
    assert _port(https["from_port"], sg_locals["ports"]) == 443 == _port(https["to_port"], sg_locals["ports"])
    assert set(sg_locals["https_egress"]).isdisjoint({"rds", "redis", "oms_alb"})
    ingress = module_resources("security_groups", "aws_vpc_security_group_ingress_rule")
    cidr_ingress = {name: body for name, body in ingress.items() if "cidr_ipv4" in body}
    assert set(cidr_ingress) == {"oms_alb_from_cidr"}
    assert cidr_ingress["oms_alb_from_cidr"]["for_each"] == "${toset(var.oms_allowed_cidrs)}"
    variables = load_hcl(TERRAFORM_DIR / "aws" / "variables.tf")["variable"]
    body = next(b["oms_allowed_cidrs"] for b in variables if "oms_allowed_cidrs" in b)
    assert any('c != "0.0.0.0/0"' in v["condition"] for v in body["validation"])


def test_store_ports_are_reachable_only_from_the_components_that_use_them(sg_locals: dict[str, Any]) -> None:
    flows: dict[str, dict[str, str]] = sg_locals["flows"]
    sources: dict[str, set[str]] = {}
    for flow in flows.values():
        sources.setdefault(f"{flow['to']}:{flow['port']}", set()).add(flow["from"])
    assert sources["rds:postgres"] == {"oms"}
    assert sources["redis:redis"] == {"oms", "ingestion", "lambda"}
    assert sources["msk:kafka"] == {"oms", "ingestion", "lambda", "topic_bootstrap", "msk"}
    assert sources["oms_alb:https"] == {"lambda"}
    assert sources["oms:grpc"] == {"oms_alb"}
    ingress = module_resources("security_groups", "aws_vpc_security_group_ingress_rule")["flow"]
    assert ingress["referenced_security_group_id"] == "${aws_security_group.this[each.value.from].id}"
    for key in ("rds", "redis", "msk"):
        assert key in sg_locals["groups"]


def test_every_bucket_blocks_public_access_and_is_encrypted() -> None:
    bucket_modules: set[str] = set()
    for module in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        if module_resources(module.name, "aws_s3_bucket"):
            bucket_modules.add(module.name)
    assert bucket_modules == {"s3_bucket"}, "every bucket must be made by modules/s3_bucket"
    pab = module_resources("s3_bucket", "aws_s3_bucket_public_access_block")["this"]
    assert pab["bucket"] == "${aws_s3_bucket.this.id}"
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert pab[flag] is True, flag
    sse = module_resources("s3_bucket", "aws_s3_bucket_server_side_encryption_configuration")["this"]
    assert sse["bucket"] == "${aws_s3_bucket.this.id}"
    ownership = module_resources("s3_bucket", "aws_s3_bucket_ownership_controls")["this"]
    assert ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
    text = (MODULES / "s3_bucket" / "main.tf").read_text()
    assert '"aws:SecureTransport"' in text


def test_data_stores_encrypt_at_rest_and_in_transit() -> None:
    msk = module_resources("msk", "aws_msk_cluster")["this"]
    transit = msk["encryption_info"][0]["encryption_in_transit"][0]
    assert transit == {"client_broker": "TLS", "in_cluster": True}
    auth = msk["client_authentication"][0]
    assert auth["unauthenticated"] is False and auth["sasl"][0]["iam"] is True
    public = msk["broker_node_group_info"][0]["connectivity_info"][0]["public_access"][0]
    assert public["type"] == "DISABLED"
    redis = module_resources("redis", "aws_elasticache_replication_group")["this"]
    assert redis["at_rest_encryption_enabled"] is True and redis["transit_encryption_enabled"] is True
    assert "auth_token" in redis
    rds = module_resources("rds", "aws_db_instance")["this"]
    assert rds["storage_encrypted"] is True and rds["publicly_accessible"] is False
    assert rds["multi_az"] == "${var.multi_az}"
    params = module_resources("rds", "aws_db_parameter_group")["this"]["parameter"]
    assert {"name": "rds.force_ssl", "value": "1"} in params
    for module in ("ecs", "lambda", "kafka_topics"):
        for name, body in module_resources(module, "aws_lambda_function").items():
            assert body["kms_key_arn"] == "${var.kms_key_arn}", f"{module}.{name}"
    service = module_resources("ecs", "aws_ecs_service")["this"]
    assert service["network_configuration"][0]["assign_public_ip"] is False
    lb = module_resources("ecs", "aws_lb")["oms"]
    assert lb["internal"] is True
