# ruff: noqa: E501  (signatures are long by nature)
"""Oracle's signing vectors (oci 2.189.0, oci.signer.Signer, throwaway test key), copied from the
project's shared vectors so the tests need nothing outside the repository."""

from __future__ import annotations

TENANCY = "ocid1.tenancy.oc1..aaaaaaaavectortenancy"
USER = "ocid1.user.oc1..aaaaaaaavectoruser"
FINGERPRINT = "82:f1:7f:35:df:28:0e:19:12:88:34:4a:d7:75:6a:01"
PRIVATE_KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQD+S3tVnhj54WAu\n"
    "jPNnrkI+492zwtjJogA99MtHno6w3+KkE444Nss1qnysd7u/8EZP3563GMMOHU4F\n"
    "OovBDh0jtKighYFYLQ0VEzsawxZqQFHR9quUEGp1mL2H8Jdme2QA239jHcGvi9sv\n"
    "/OjZyo7EvhfZ/lmqeSLe2BKYNFruOC7vhqxjO7H6CfKb8PUcrbS2175BypzzGhJ0\n"
    "/YOja96SqCfI6htqK3HIkXJyGCFG4SPfYXn4to5ZZAb5F916KBcl/ayJ2abAXEjf\n"
    "GKtP/j9qVCC+dnSXsmeuLvs7pYgiHLTFcNCXrtQ7L5Ql8WdJI78yQElCJ4yprcEC\n"
    "B1H80FynAgMBAAECggEADR9sD/EGrO56fix76x/M/13W9Q3bDhy0En5tdxaxmmMT\n"
    "WRBBSJlbRzuzD1tmbvNBTaHmmOBIQJQ2kIKC78WAr3UFNrNtB1Xb1PiXFjx3Daig\n"
    "EEvAcvWd6M+nCDrcNUes03aATmcctahr+T/97C9Nys1cgb1kdy2lJQbVftFE2AIn\n"
    "5Hhf6tUGnWqCwhdMChPezphM8vgypxO9UP1wJVJxpyhL1DjXqlEaFCW0yvgJ5Wd3\n"
    "bbkF1HfsufMm25crFSw+EgNZawsUlf1R+aTFgBAIufX1MyFgs4RVWsCsXs2CDbyh\n"
    "UGp2ZSPjLNILjFcAC57hGT8u7fvo5nVWjQZ5OKWWcQKBgQD/WWL5byq17POTIyEc\n"
    "WqrWLwaYyn++HkrlK+TDwd2vAuo+aHZQpgK4y2nX2QBSkd5cE/jagt0Bn+jdpyZD\n"
    "GS7NufnjwiEkMP+5eRdPYHFq/8AxbrUQw1uq47/rvyJasmEX01WdwW6OiU0c3at7\n"
    "xeotexNWfyGXdEBH7RDB4A285QKBgQD+8Wg/zkyFyEVxI5NH7NyALfWDr4XKJVGl\n"
    "IYbgEc3Y2GmqDn/paR2kJ2ihXAUe/F0Y2XQpkPeV+AOnXxzZe4SfZFZ8czUhvbGk\n"
    "0qWHxo8KdnxhrgcKvpydEW75udWeu63Bzj5pN0U+hqVtkHHLODeL9ANNgdy2gWg/\n"
    "1D4ADlEmmwKBgQDgb62ZtgchXkJ86hyZMmwD09OFij8bWL7VjW4GTajOwc4nymNr\n"
    "4W51BH1kddxdts5tujQ5w1oDqozf/aGYylKkCjnE4YWFrPeoCvHdF9S4ilBgYoEN\n"
    "WdiBbKrsx9OnSjAi4+LVxQWqjK3VmFS4dq2tCgdmOFnLKCez0H+xGICarQKBgB3z\n"
    "GC8euiihPV8sMboqXkEEpSoCLbJwreW7SY/7J3aI/ejHaUlvWtcU9hq2p7dbKEiq\n"
    "CxZy/FL23t8DsmzuMMdUz0AxfJVpJnxZbq7Dqbwt7TDAc/1UJSvih2n45dqO67uv\n"
    "0e8kWhMdWEPFy0h3YzcixFyPm/EoxKly8pGpHOlvAoGBAKjyqthfF8+pyPsL/uRg\n"
    "5dfAejfojyw5wlG1SGLxgeMyYYVCeJLIDgX8TDAD64Jr9qCOK2pwH+4lZUTG3NQi\n"
    "kjPAXNN+W8RsRUU0wYzsb06iaY3hFS2mZmJnVGo7Vu5k56UnPQPz7ZGtzmRCSgvP\n"
    "3rVpvBc43QNCeRK4EStsLJBK\n"
    "-----END PRIVATE KEY-----\n"
)
DATE = "Thu, 05 Jan 2014 21:31:40 GMT"
CASES = [
    {
        "method": "GET",
        "url": "https://aidp.us-ashburn-1.oci.oraclecloud.com/20260430/aiDataPlatforms/ocid1.aidataplatform.oc1.iad.vector/workspaces/ws-1/taskRuns/tr-1",
        "body": None,
        "headers_sent": {
            "content-type": "application/json",
            "date": "Thu, 05 Jan 2014 21:31:40 GMT",
            "host": "aidp.us-ashburn-1.oci.oraclecloud.com",
        },
        "authorization": 'Signature algorithm="rsa-sha256",headers="date (request-target) host",keyId="ocid1.tenancy.oc1..aaaaaaaavectortenancy/ocid1.user.oc1..aaaaaaaavectoruser/82:f1:7f:35:df:28:0e:19:12:88:34:4a:d7:75:6a:01",signature="DPvsjxC8zXnWcAD19TtAvD85qZQgvogdfB2dV5Dwg4f/cB2MvVpBeuZEMxJ84vn4UMBcZ7TKVMxsBuz8eQ6cyO6lobTRuhGIeKSSW/vd0mmpDGNvqXpca0DKE3PCo9joSw+ADfkhcm63jV0u75Tc64GH8paIhUD2KEDrBIMyfI7IFqHf+QN8n9TkwxogMJGwyE0KsGLI2q5/rz9HB3B3b7/tnRoOBB3m70QQmlcVwvbyxNVZsUlDCgWVyrs+pLvj/O89CkTqGJH5JFxOKBA3AQhOMpbARtgxNVJ1xo+WzvSYaMvPyMeWS//oU1jR3kQX4SHwv/CAusTgqCqCj3RIDA==",version="1"',
    },
    {
        "method": "GET",
        "url": "https://aidp.us-ashburn-1.oci.oraclecloud.com/20260430/aiDataPlatforms/ocid1.aidataplatform.oc1.iad.vector/workspaces/ws-1/mlops/api/2.0/mlflow/runs/get?run_id=r-1",
        "body": None,
        "headers_sent": {
            "content-type": "application/json",
            "date": "Thu, 05 Jan 2014 21:31:40 GMT",
            "host": "aidp.us-ashburn-1.oci.oraclecloud.com",
        },
        "authorization": 'Signature algorithm="rsa-sha256",headers="date (request-target) host",keyId="ocid1.tenancy.oc1..aaaaaaaavectortenancy/ocid1.user.oc1..aaaaaaaavectoruser/82:f1:7f:35:df:28:0e:19:12:88:34:4a:d7:75:6a:01",signature="Ac2lyruRaGjxHdems2smsUxktjszrOJln5sD9nFFY6fPMdqALb4VaA923PLcrQCmoHsE5DtOESuY4wnPBaIA4q7SN5rHpwu+mU62kROkf16yVlexXNnPoqJX5JKOxJAoCjwkSXkRZd4sLFw0YNa1edyXAjjhJbCIB8aVveJ1f8H8CpNh+fz9AXSEwCMaDkCDuIPCLv7+wpKAEcBDK/jf53+33ASqzcS4n9v1GJ8AItUzg2iujCn9c76/GcFshR0JyT/dOlJsrmC4aizD9LB5lZJ2F44jFNFVGlXmla8m6OR8pY4tRsvJxWEPPRF5iZuN/eYWu0pIlMQncOjl0vmuxg==",version="1"',
    },
    {
        "method": "POST",
        "url": "https://aidp.us-ashburn-1.oci.oraclecloud.com/20260430/aiDataPlatforms/ocid1.aidataplatform.oc1.iad.vector/workspaces/ws-1/taskRuns/tr-1/actions/fetchOutput",
        "body": '{"outputKey":"out-1"}',
        "headers_sent": {
            "content-length": "21",
            "content-type": "application/json",
            "date": "Thu, 05 Jan 2014 21:31:40 GMT",
            "host": "aidp.us-ashburn-1.oci.oraclecloud.com",
            "x-content-sha256": "sn/WdNqPfzWXILASZv/4tVDJGwL6V8z6bNtFDIe3LlI=",
        },
        "authorization": 'Signature algorithm="rsa-sha256",headers="date (request-target) host content-length content-type x-content-sha256",keyId="ocid1.tenancy.oc1..aaaaaaaavectortenancy/ocid1.user.oc1..aaaaaaaavectoruser/82:f1:7f:35:df:28:0e:19:12:88:34:4a:d7:75:6a:01",signature="URVp68A3b8KYnaZ+SYZVZUAkFGhyhVr3OhswonjJ6duMMyElgd6rHLhFtAFLRi0fE/5Mm2XelbUHm3uVYTaYer35BFVJLcbt0Lc0Q6x1MF+PcTPWze1892Bkn7pvDV9BCMEUOEsSJUAT7H1uS2GXZFXdbXOgWim3cYFA7M4d5xIPQUIGOfryJHICqCHdcEEM8ZMm+1wkjxU0jRfeVrI5wZpZZKr4eSr5m5gH333aSlWLhNx4+gTWVIapMFsPsfah69ve3nTB9iim0OkBoBdZffNUXKmzShTChAIsvLbLY91yc/1Z0+xDMHVidy9G08g4uEgLw3AbHa141RXW9PG7nA==",version="1"',
    },
]
