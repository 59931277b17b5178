#!/usr/bin/env python3
"""boto3 and the AWS CLI against two EC2 endpoints, which must agree.

    python3 boto3_conformance.py --image ami-12c6146b moto=http://127.0.0.1:5000 ec2fake=http://127.0.0.1:8123

Every scenario runs against each endpoint and is reduced to a record of
what EC2 clients rely on (counts, tags, state names, error codes and HTTP
statuses), never ids or times. The records of all endpoints must be
equal; the first differing one is printed and the exit status is 1. Each
run tags its instances with a fresh run id and reads only those, so the
endpoints may hold other instances.

The scenarios cover what moto and EC2 agree on: RunInstances with tags,
DescribeInstances filters (tag:, tag-key, instance-id,
instance-state-name) and paging, StopInstances, TerminateInstances, the
errors of unknown and malformed ids, and DryRun, which answers
DryRunOperation (HTTP 412) and changes nothing. Where moto departs from
EC2 (it does not page DescribeInstances, and answers NotFound for a
malformed id) only what both share is compared. The AWS CLI is run for a
describe and a dry-run terminate when it is on PATH.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

UNKNOWN = "i-0000000000000dead"


def client(endpoint):
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def error_of(call, **kwargs):
    """The error code and HTTP status call answers, or None for success."""
    try:
        call(**kwargs)
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    return None


def tags_of(instance):
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def describe(ec2, **kwargs):
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
        for r in page["Reservations"]:
            out.extend(r["Instances"])
    return out


def settled(state):
    """Stop and terminate take time on EC2; either side of it agrees."""
    return {"stopping": "stopping|stopped", "stopped": "stopping|stopped",
            "shutting-down": "shutting-down|terminated", "terminated": "shutting-down|terminated"}.get(state, state)


def scenarios(ec2, endpoint, image):
    run = uuid.uuid4().hex
    mine = {"Name": "tag:run", "Values": [run]}
    rec = {}

    out = ec2.run_instances(
        ImageId=image, MinCount=7, MaxCount=7, InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "run", "Value": run}, {"Key": "app", "Value": "blue"}]}],
    )
    ids = sorted(i["InstanceId"] for i in out["Instances"])
    rec["run.launched"] = len(ids)
    rec["run.tags"] = sorted({json.dumps(dict(tags_of(i), run="<run>"), sort_keys=True) for i in out["Instances"]})

    got = describe(ec2, Filters=[mine])
    rec["describe.tag"] = sorted(i["InstanceId"] for i in got) == ids
    rec["describe.states"] = sorted({i["State"]["Name"] for i in got})
    rec["describe.tag_key"] = len([i for i in describe(ec2, Filters=[mine, {"Name": "tag-key", "Values": ["app"]}])])
    rec["describe.tag_key_missing"] = len(describe(ec2, Filters=[mine, {"Name": "tag-key", "Values": ["absent"]}]))
    rec["describe.instance_id"] = [i["InstanceId"] for i in describe(ec2, Filters=[{"Name": "instance-id", "Values": [ids[0]]}])] == [ids[0]]
    rec["describe.by_ids"] = len(describe(ec2, InstanceIds=ids[:3]))

    pages = list(ec2.get_paginator("describe_instances").paginate(Filters=[mine], PaginationConfig={"PageSize": 5}))
    seen = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
    # moto answers in one page where EC2 pages (the fake does, as EC2):
    # only what paging must yield is compared.
    rec["paging.all_once"] = sorted(seen) == ids

    # DryRun: DryRunOperation, and nothing changes.
    rec["dry_run.run"] = error_of(ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1, DryRun=True)
    rec["dry_run.describe"] = error_of(ec2.describe_instances, DryRun=True)
    rec["dry_run.terminate"] = error_of(ec2.terminate_instances, InstanceIds=[ids[0]], DryRun=True)
    rec["dry_run.stop"] = error_of(ec2.stop_instances, InstanceIds=[ids[1]], DryRun=True)
    rec["dry_run.changed_nothing"] = sorted({i["State"]["Name"] for i in describe(ec2, Filters=[mine])})
    rec["dry_run.launched_nothing"] = len(describe(ec2, Filters=[mine]))

    # Unknown and malformed ids fail the whole call.
    rec["error.unknown"] = error_of(ec2.terminate_instances, InstanceIds=[ids[2], UNKNOWN])
    # EC2 answers InvalidInstanceID.Malformed (as the fake does), moto
    # InvalidInstanceID.NotFound: only the status is compared.
    rec["error.malformed"] = (error_of(ec2.terminate_instances, InstanceIds=["not-an-id"]) or [None, None])[1]
    rec["error.unknown_changed_nothing"] = describe(ec2, InstanceIds=[ids[2]])[0]["State"]["Name"]

    stop = ec2.stop_instances(InstanceIds=[ids[3]])["StoppingInstances"][0]
    rec["stop.previous"] = stop["PreviousState"]["Name"]
    rec["stop.current"] = settled(stop["CurrentState"]["Name"])
    rec["stop.filtered"] = len(describe(ec2, Filters=[mine, {"Name": "instance-state-name", "Values": ["stopping", "stopped"]}]))

    term = ec2.terminate_instances(InstanceIds=ids[4:6])["TerminatingInstances"]
    rec["terminate.previous"] = sorted(t["PreviousState"]["Name"] for t in term)
    rec["terminate.current"] = sorted(settled(t["CurrentState"]["Name"]) for t in term)
    rec["terminate.running_left"] = len(describe(ec2, Filters=[mine, {"Name": "instance-state-name", "Values": ["running"]}]))

    if shutil.which("aws"):
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1", AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
        cli = ["aws", "ec2", "--endpoint-url", endpoint, "--output", "json"]
        p = subprocess.run(cli + ["describe-instances", "--filters", "Name=tag:run,Values=" + run,
                                  "--query", "Reservations[].Instances[].State.Name"],
                           capture_output=True, text=True, env=env, timeout=120)
        rec["cli.describe"] = [p.returncode, sorted(settled(s) for s in json.loads(p.stdout or "[]"))]
        p = subprocess.run(cli + ["terminate-instances", "--instance-ids", ids[6], "--dry-run"],
                           capture_output=True, text=True, env=env, timeout=120)
        rec["cli.dry_run"] = [p.returncode != 0, "DryRunOperation" in p.stderr]
        p = subprocess.run(cli + ["describe-instances", "--instance-ids", ids[6],
                                  "--query", "Reservations[].Instances[].State.Name"],
                           capture_output=True, text=True, env=env, timeout=120)
        rec["cli.dry_run_changed_nothing"] = json.loads(p.stdout or "null")
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True, help="an AMI every endpoint accepts")
    ap.add_argument("endpoints", nargs="+", metavar="NAME=URL")
    args = ap.parse_args()
    records = {}
    for spec in args.endpoints:
        name, _, url = spec.partition("=")
        records[name] = scenarios(client(url), url, args.image)
    names = list(records)
    first = records[names[0]]
    failed = False
    for name in names[1:]:
        for key in sorted(set(first) | set(records[name])):
            a, b = first.get(key), records[name].get(key)
            if a != b:
                failed = True
                print(f"{key}: {names[0]} {json.dumps(a)}, {name} {json.dumps(b)}")
    if failed:
        return 1
    print(json.dumps(first, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
