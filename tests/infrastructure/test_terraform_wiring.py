"""The AWS wiring follows the catalogue files the code uses: Terraform itself evaluates the modules' locals
(topics.yaml, functions.yaml), and the results are compared with what aipx.topics/aipx.functions read."""

from __future__ import annotations

from typing import Any

import pytest
from aipx.functions import manifest
from aipx.topics import catalogue

from tests.infrastructure.conftest import (
    AWS_ROOT,
    CATALOG,
    MODULES,
    EvalLocals,
    load_hcl,
    module_calls,
    module_resources,
)

CLUSTER_ARN = "arn:aws:kafka:ap-northeast-2:123456789012:cluster/aipx-dev/1111-2222-3"


def _root_locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in load_hcl(AWS_ROOT / "main.tf")["locals"]:
        merged.update(block)
    return merged


@pytest.fixture(scope="module")
def msk_locals(eval_locals: EvalLocals) -> dict[str, Any]:
    return eval_locals(MODULES / "msk", ["topics"], {"topics_file": str(CATALOG / "topics.yaml")})


@pytest.fixture(scope="module")
def lambda_locals(eval_locals: EvalLocals) -> dict[str, Any]:
    return eval_locals(
        MODULES / "lambda",
        ["mappings", "reads", "groups", "writes", "functions"],
        {
            "manifest_file": str(CATALOG / "functions.yaml"),
            "msk_cluster_arn": CLUSTER_ARN,
            "function_produces": _root_locals()["function_produces"],
        },
    )


def test_root_reads_the_catalogue_files_the_code_reads() -> None:
    root = _root_locals()
    assert root["catalog_dir"] == "${path.root}/../../../libs/aipx/src/aipx/catalog"
    assert (AWS_ROOT / "../../../libs/aipx/src/aipx/catalog").resolve() == CATALOG.resolve()
    assert root["topics_file"] == "${local.catalog_dir}/topics.yaml"
    assert root["manifest_file"] == "${local.catalog_dir}/functions.yaml"
    calls = module_calls(AWS_ROOT)
    assert calls["msk"]["topics_file"] == "${local.topics_file}"
    assert calls["lambda"]["manifest_file"] == "${local.manifest_file}"
    assert calls["kafka_topics"]["topics"] == "${module.msk.topics}"


def test_every_catalogue_topic_is_in_the_msk_topic_set_with_the_same_settings(
    msk_locals: dict[str, Any],
) -> None:
    tf_topics: dict[str, Any] = msk_locals["topics"]
    cat = catalogue()
    assert set(tf_topics) == set(cat.names())
    for spec in cat.topics:
        tf = tf_topics[spec.name]
        assert tf["partitions"] == spec.partitions, spec.name
        assert tf["replication_factor"] == spec.replication_factor, spec.name
        assert tf["config"] == spec.topic_configs(), spec.name


def test_topic_bootstrap_is_invoked_with_the_msk_topic_set_and_reruns_on_change() -> None:
    invocation = module_resources("kafka_topics", "aws_lambda_invocation")["ensure_topics"]
    assert invocation["input"] == "${jsonencode({topics = var.topics})}"
    assert invocation["triggers"]["catalogue"] == "${sha256(jsonencode(var.topics))}"
    assert "source_code_hash" in invocation["triggers"]["package"]
    function = module_resources("kafka_topics", "aws_lambda_function")["this"]
    assert function["handler"] == "aipx_topic_bootstrap.handler"


def test_one_mapping_per_manifest_event_source_with_its_topic_and_consumer_group(
    lambda_locals: dict[str, Any],
) -> None:
    mappings: dict[str, Any] = lambda_locals["mappings"]
    expected = {
        (f.name, es.topic, es.consumer_group): es for f in manifest().functions for es in f.event_sources
    }
    rendered = {(m["function"], m["topic"], m["consumer_group"]): m for m in mappings.values()}
    # merge() would silently drop a second source of a function on the same topic: the keys must be unique.
    assert len(mappings) == len(expected), "a function has two event sources on the same topic"
    assert set(rendered) == set(expected)
    for triple, es in expected.items():
        m = rendered[triple]
        assert m["starting_position"] == es.starting_position
        assert m["batch_size"] == es.batch_size
        assert m["batching_window_s"] == es.batching_window_s
        assert m["max_retries"] == es.max_retries
        assert m["bisect_on_error"] == es.bisect_on_error
        assert m["on_failure_topic"] == es.on_failure_topic
    groups = [m["consumer_group"] for m in mappings.values()]
    assert len(groups) == len(set(groups)), "consumer group ids must be unique across mappings"


def test_the_mapping_resource_takes_every_field_from_the_manifest_entry() -> None:
    esm = module_resources("lambda", "aws_lambda_event_source_mapping")["msk"]
    assert esm["for_each"] == "${local.mappings}"
    assert esm["event_source_arn"] == "${var.msk_cluster_arn}"
    assert esm["function_name"] == "${aws_lambda_function.this[each.value.function].arn}"
    assert esm["topics"] == ["${each.value.topic}"]
    assert (
        esm["amazon_managed_kafka_event_source_config"][0]["consumer_group_id"]
        == "${each.value.consumer_group}"
    )
    assert esm["starting_position"] == "${each.value.starting_position}"
    assert esm["batch_size"] == "${each.value.batch_size}"
    assert esm["maximum_batching_window_in_seconds"] == "${each.value.batching_window_s}"
    assert esm["maximum_retry_attempts"] == "${var.provisioned_mode ? each.value.max_retries : null}"
    assert (
        esm["bisect_batch_on_function_error"] == "${var.provisioned_mode ? each.value.bisect_on_error : null}"
    )
    assert "ReportBatchItemFailures" in esm["function_response_types"]
    assert esm["destination_config"][0]["on_failure"][0]["destination_arn"] == "${var.failure_bucket_arn}"
    assert esm["tags"]["OnFailureTopic"] == "${each.value.on_failure_topic}"
    pollers = esm["dynamic"][0]["provisioned_poller_config"]
    assert pollers["for_each"] == "${var.provisioned_mode ? [1] : []}"


def test_functions_come_from_the_manifest_with_its_handler_memory_and_timeout(
    lambda_locals: dict[str, Any],
) -> None:
    functions: dict[str, Any] = lambda_locals["functions"]
    assert set(functions) == {f.name for f in manifest().functions}
    for spec in manifest().functions:
        assert functions[spec.name]["handler"] == spec.handler
        assert functions[spec.name]["memory_mb"] == spec.memory_mb
        assert functions[spec.name]["timeout_s"] == spec.timeout_s
    fn = module_resources("lambda", "aws_lambda_function")["this"]
    assert fn["for_each"] == "${local.functions}"
    assert fn["handler"] == "${each.value.handler}"
    assert fn["memory_size"] == "${coalesce(var.memory_override, each.value.memory_mb)}"
    assert fn["timeout"] == "${coalesce(var.timeout_override, each.value.timeout_s)}"


def test_function_url_only_for_functions_that_ask_for_one_and_iam_authenticated(
    lambda_locals: dict[str, Any],
) -> None:
    url = module_resources("lambda", "aws_lambda_function_url")["this"]
    assert url["authorization_type"] == "AWS_IAM"
    assert "if try(f.function_url, false)" in url["for_each"]
    wanted = {f.name for f in manifest().functions if f.function_url}
    assert wanted == {"cognitive"}
    outputs = load_hcl(AWS_ROOT / "outputs.tf")["output"]
    values = {name: body["value"] for block in outputs for name, body in block.items()}
    assert values["cognitive_api_url"] == '${module.lambda.function_urls["cognitive"]}'


def test_function_roles_read_only_their_topics_as_their_groups(lambda_locals: dict[str, Any]) -> None:
    reads: dict[str, list[str]] = lambda_locals["reads"]
    groups: dict[str, list[str]] = lambda_locals["groups"]
    writes: dict[str, list[str]] = lambda_locals["writes"]
    produces = _root_locals()["function_produces"]
    cat = catalogue()
    for spec in manifest().functions:
        assert sorted(reads[spec.name]) == sorted({es.topic for es in spec.event_sources})
        assert sorted(groups[spec.name]) == sorted({es.consumer_group for es in spec.event_sources})
        expected_writes = set(produces[spec.name]) | {es.on_failure_topic for es in spec.event_sources}
        assert set(writes[spec.name]) == expected_writes
        assert set(writes[spec.name]) <= set(cat.names())
    policy = module_resources("lambda", "aws_iam_role_policy")["function"]
    assert policy["policy"] == "${data.aws_iam_policy_document.function[each.key].json}"


def test_every_function_reads_topics_someone_writes() -> None:
    produces = _root_locals()["function_produces"]
    writers = set(_root_locals()["ingestion_produces"]) | set(_root_locals()["oms_produces"])
    writers |= {t for topics in produces.values() for t in topics}
    for spec in manifest().functions:
        for es in spec.event_sources:
            assert es.topic in writers, f"{spec.name} reads {es.topic}, which nothing in AWS writes"
