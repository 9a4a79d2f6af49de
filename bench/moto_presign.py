"""Runs inside the moto venv: make the bucket and print presigned PUT URLs or POST forms as JSON.

Usage: python moto_presign.py ENDPOINT BUCKET put|post|head COUNT KEY_PREFIX
"""

from __future__ import annotations

import json
import os
import sys

import boto3
from botocore.config import Config

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def main(endpoint: str, bucket: str, mode: str, count: int, prefix: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    keys = [f"{prefix}-{i}" for i in range(count)]
    if mode == "put":
        out = [
            s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)
            for key in keys
        ]
    elif mode == "head":  # of objects uploaded before (the keys of an earlier call with the same prefix)
        out = [
            s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)
            for key in keys
        ]
    else:
        out = [s3.generate_presigned_post(bucket, key, ExpiresIn=3600) for key in keys]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
