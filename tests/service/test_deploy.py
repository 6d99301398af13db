"""The AWS deployment template: valid for cfn-lint, and its DynamoDB tables are the ones the service needs — they
are created in DynamoDB Local from the template's own properties, and the service then runs on them with
``TIERSTORE_CREATE_TABLES=0`` (as it does on AWS) and the strict start-up option."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import subprocess
import sys
import uuid
from typing import Any

import cfnlint.decode as cfnlint_decode
import pytest

from tierstore.backends import schema_of

from _servers import DYNAMODB_URL, require

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "service" / "deploy" / "cloudformation.yaml"
BIN = pathlib.Path(sys.executable).parent


def _template() -> Any:
    template, matches = cfnlint_decode.decode(str(TEMPLATE))
    assert not matches, matches
    return template


def test_cfn_lint_passes() -> None:
    exe = shutil.which("cfn-lint", path=str(BIN)) or shutil.which("cfn-lint")
    assert exe is not None, "cfn-lint is part of the test extra"
    res = subprocess.run([exe, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: pathlib.Path) -> None:
    """The control: the validator really reads the file (a wrong property and a dangling Ref fail it)."""
    broken = TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMode: FREE_OF_CHARGE", 1)
    broken = broken.replace("!Ref RedisSubnetGroup", "!Ref NoSuchSubnetGroup", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    exe = shutil.which("cfn-lint", path=str(BIN)) or shutil.which("cfn-lint")
    assert exe is not None
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "FREE_OF_CHARGE" in res.stdout and "NoSuchSubnetGroup" in res.stdout


def test_the_template_keeps_the_network_and_secrets_tight() -> None:
    resources = _template()["Resources"]
    service_sg = resources["ServiceSecurityGroup"]["Properties"]
    (ingress,) = service_sg["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "AlbSecurityGroup"} and ingress["FromPort"] == 8080
    for name in ("RedisSecurityGroup", "DbSecurityGroup", "DaxSecurityGroup"):
        (rule,) = resources[name]["Properties"]["SecurityGroupIngress"]
        assert rule["SourceSecurityGroupId"] == {"Ref": "ServiceSecurityGroup"}, name
        assert "CidrIp" not in rule
    container = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env_names = {e["Name"] for e in container["Environment"]}
    assert not any("PASSWORD" in n or "TOKEN" in n for n in env_names), "secrets are not plain env values"
    secret_names = str(container["Secrets"])
    assert "TIERSTORE_CACHE_PASSWORD" in secret_names and "TIERSTORE_STORE_PASSWORD" in secret_names
    assert resources["Redis"]["Properties"]["TransitEncryptionEnabled"] is True
    assert resources["CustomersTable"]["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert resources["ScalableTarget"]["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    assert resources["Service"]["Properties"]["LaunchType"] == "FARGATE"


def _table_props(logical: str) -> dict[str, Any]:
    props = dict(_template()["Resources"][logical]["Properties"])
    return {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode")}


@pytest.mark.dynamodb
def test_the_service_runs_on_tables_made_from_the_template(tmp_path: pathlib.Path) -> None:
    require(DYNAMODB_URL, "dynamodb")
    sys.path.insert(0, str(ROOT / "examples" / "service"))
    try:
        import app as service_app
    finally:
        sys.path.remove(str(ROOT / "examples" / "service"))
    prefix = f"t{uuid.uuid4().hex[:8]}-"

    async def create_from_template() -> None:
        import tierstore

        async with tierstore.connect(f"{DYNAMODB_URL}&table_prefix={prefix}") as db:
            store: Any = db.store
            for logical, entity in (("CustomersTable", service_app.Customer), ("OrdersTable", service_app.Order)):
                params = {"TableName": prefix + schema_of(entity).table, **_table_props(logical)}
                await store._call("CreateTable", params, idempotent=False, control=True)
            # What tierstore itself would create for the entities is exactly that.
            for entity in (service_app.Customer, service_app.Order):
                want = store._create_params(store._table(schema_of(entity)))
                logical = "CustomersTable" if entity is service_app.Customer else "OrdersTable"
                got = _table_props(logical)
                assert sorted(map(str, got["KeySchema"])) == sorted(map(str, want["KeySchema"]))
                assert sorted(map(str, got["AttributeDefinitions"])) == sorted(map(str, want["AttributeDefinitions"]))

    asyncio.run(create_from_template())

    from _service import Service

    svc = Service(tmp_path, {
        "TIERSTORE_STORE": f"{DYNAMODB_URL}&table_prefix={prefix}",
        "TIERSTORE_CACHE": "memory://",
        "TIERSTORE_CREATE_TABLES": "0",
        "TIERSTORE_STRICT": "1",
    })
    try:
        c = svc.wait_ready().client
        assert c.post("/api/customers", json={"id": "c1", "name": "Dyn"}).status_code == 201
        assert c.post("/api/customers/c1/orders",
                      json={"customer_id": "c1", "order_id": "o1", "total_cents": 5}).status_code == 201
        assert c.get("/api/orders/c1/o1").json()["customer"]["name"] == "Dyn"
        assert c.get("/api/customers/c1/orders").json()["items"][0]["order_id"] == "o1"
        assert c.get("/readyz").json()["store"]["name"] == "dynamodb"
    finally:
        svc.stop()
