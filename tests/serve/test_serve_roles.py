"""``secretcache serve`` and the Agent's ``roleArn`` parameter, against moto's HTTP server in multi-account
mode: each account's secrets are apart, and the credentials moto's STS hands out read the role's account.

Statuses as the Agent answers them: a malformed ARN 400, past ``--max-roles`` 400 ``MaxRolesExceeded``,
an AssumeRole that fails 403 ``AccessDeniedException`` (moto refuses it when IAM enforcement is on and
the caller's policy does not allow ``sts:AssumeRole`` on that role).
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.fix_canary import canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import Serve, serve_env, serving

pytestmark = pytest.mark.integration

A, B, C = "111111111111", "222222222222", "333333333333"


def role(account: str, name: str = "reader") -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def in_account(moto_url: str, account: str, service: str = "secretsmanager") -> Any:
    """A client of ``account`` on moto (credentials from moto's STS for a role of that account)."""
    import boto3

    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=moto_url)
    creds = sts.assume_role(RoleArn=role(account, "setup"), RoleSessionName="setup")["Credentials"]
    return boto3.client(service, region_name="us-east-1", endpoint_url=moto_url,
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def read(server: Serve, secret_id: str, role_arn: str | None = None, *, path_style: bool = False,
         extra: str = "") -> tuple[int, Any]:
    params = [f"roleArn={quote(role_arn, safe='')}"] if role_arn is not None else []
    params += [extra] if extra else []
    if path_style:
        target = f"/v1/{secret_id}" + ("?" + "&".join(params) if params else "")
    else:
        target = "&".join([f"/secretsmanager/get?secretId={secret_id}", *params])
    status, body = server.request(target)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def sts_env(moto_url: str, **extra: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL_STS": moto_url, **extra}


def test_two_roles_reading_the_same_name_get_their_own_cached_answers(moto_url: str) -> None:
    name = unique("serve/roles")
    value_a, value_b = canary_value("role-a"), canary_value("role-b")
    in_account(moto_url, A).create_secret(Name=name, SecretString=value_a)
    in_account(moto_url, B).create_secret(Name=name, SecretString=value_b)
    with serving(moto_url, env=sts_env(moto_url)) as server:
        for path_style in (False, True):
            status, doc = read(server, name, role(A), path_style=path_style)
            assert (status, doc["SecretString"]) == (200, value_a)
            assert f":{A}:" in doc["ARN"]
            status, doc = read(server, name, role(B), path_style=path_style)
            assert (status, doc["SecretString"]) == (200, value_b)
            status, doc = read(server, name, path_style=path_style)  # serve's own account has no such secret
            assert (status, doc["__type"]) == (400, "ResourceNotFoundException")

        # Each answer is cached under its role: a change in A is not seen before the ttl, B is untouched.
        in_account(moto_url, A).put_secret_value(SecretId=name, SecretString="changed in A")
        assert read(server, name, role(A))[1]["SecretString"] == value_a
        assert read(server, name, role(B))[1]["SecretString"] == value_b
        assert read(server, name, role(A), extra="refreshNow=true")[1]["SecretString"] == "changed in A"
        assert read(server, name, role(A))[1]["SecretString"] == "changed in A"
        assert read(server, name, role(B), path_style=True)[1]["SecretString"] == value_b


@pytest.mark.parametrize("bad", ["notAnArn", "", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:user/x",
                                 'arn:aws:iam::123456789012:role/x","injected":"1'])
def test_a_malformed_role_arn_is_400_in_both_styles(moto_url: str, bad: str) -> None:
    with serving(moto_url, env=sts_env(moto_url)) as server:
        for path_style in (False, True):
            status, body = read(server, "any/secret", bad, path_style=path_style)
            assert status == 400
            assert "invalid roleArn format" in body


def test_more_roles_than_max_roles_is_400_and_known_roles_still_read(moto_url: str) -> None:
    name = unique("serve/limit")
    for account in (A, B, C):
        in_account(moto_url, account).create_secret(Name=name, SecretString=f"in {account}")
    with serving(moto_url, "--max-roles", "2", env=sts_env(moto_url)) as server:
        assert read(server, name, role(A))[1]["SecretString"] == f"in {A}"
        assert read(server, name, role(B), path_style=True)[1]["SecretString"] == f"in {B}"
        for path_style in (False, True):
            status, doc = read(server, name, role(C), path_style=path_style)
            assert (status, doc["__type"]) == (400, "MaxRolesExceeded")
            assert role(C) in doc["message"]
        assert read(server, name, role(A), extra="refreshNow=true")[1]["SecretString"] == f"in {A}"
        assert read(server, name, role(B))[1]["SecretString"] == f"in {B}"


@contextmanager
def iam_enforced(moto_url: str) -> Iterator[None]:
    """moto checks every request's signature and IAM policy (moto-wide, so undone at once after)."""
    def reset_auth(count: str) -> None:
        request = urllib.request.Request(f"{moto_url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310: moto on 127.0.0.1
            assert response.status == 200

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


def test_a_failed_assume_role_is_403_and_holds_no_place(moto_url: str) -> None:
    import boto3

    uid = uuid.uuid4().hex[:8]
    allowed, refused = role(A, f"reader-{uid}"), role(B, f"reader-{uid}")
    name = unique("serve/denied")
    in_account(moto_url, A).create_secret(Name=name, SecretString="through A")
    home = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_url)
    home.create_secret(Name=name, SecretString="at home")
    # The role serve may assume, in account A, may read secrets there (moto checks a role's own policy).
    iam_a = in_account(moto_url, A, "iam")
    iam_a.create_role(RoleName=f"reader-{uid}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    iam_a.put_role_policy(RoleName=f"reader-{uid}", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}))
    # serve's own user may read secrets and assume that one role, not the other.
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
    iam.create_user(UserName=f"serve-{uid}")
    iam.put_user_policy(UserName=f"serve-{uid}", PolicyName="serve", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
                      {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": allowed}]}))
    key = iam.create_access_key(UserName=f"serve-{uid}")["AccessKey"]
    env = sts_env(moto_url, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    with serving(moto_url, "--max-roles", "1", env=env) as server, iam_enforced(moto_url):
        for path_style in (False, True):
            status, doc = read(server, name, refused, path_style=path_style)
            assert (status, doc["__type"]) == (403, "AccessDeniedException")
            assert "sts:AssumeRole" in doc["message"]
        # The refused role took no place: the one allowed role still fits in --max-roles 1.
        status, doc = read(server, name, allowed)
        assert (status, doc["SecretString"]) == (200, "through A")
        assert read(server, name)[1]["SecretString"] == "at home"
        status, doc = read(server, name, refused)
        assert (status, doc["__type"]) == (400, "MaxRolesExceeded")


def test_prefetch_entries_may_name_a_role(moto_url: str) -> None:
    name = unique("serve/prefetch")
    in_account(moto_url, A).create_secret(Name=name, SecretString="prefetched in A")
    with serving(moto_url, "--prefetch", f"{name}?roleArn={role(A)}", env=sts_env(moto_url)) as server:
        # Loaded before serve said it was listening: a change made now is not seen before the ttl.
        in_account(moto_url, A).put_secret_value(SecretId=name, SecretString="changed")
        assert read(server, name, role(A))[1]["SecretString"] == "prefetched in A"


@pytest.mark.parametrize("entry", ["x?roleArn=notAnArn", "x?versionStage=AWSPREVIOUS", "?roleArn=" + role(A)])
def test_a_malformed_prefetch_entry_stops_serve_at_start(moto_url: str, entry: str) -> None:
    server = Serve(["--port", "0", "--endpoint-url", moto_url, "--prefetch", entry],
                   serve_env({"AWS_TOKEN": "t"}), must_start=False)
    assert server.proc.wait(20) == 2
    server.stop()
    assert "--prefetch" in server.stderr
