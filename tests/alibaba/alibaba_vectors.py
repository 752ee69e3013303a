# ruff: noqa: E501  (signatures are long by nature)
"""Alibaba Cloud ACS3-HMAC-SHA256 vectors (alibabacloud_tea_openapi 0.4.6, Utils.get_authorization),
copied from the project's shared vectors so the tests need nothing outside the repository."""

from __future__ import annotations

from typing import Any

ACCESS_KEY_ID = "YourAccessKeyId"
ACCESS_KEY_SECRET = "YourAccessKeySecret"
DATE = "2025-01-02T03:04:05Z"
EPOCH = 1735787045.0  # DATE as seconds since the epoch
NONCE = "3156853299f313e23d1673dc12e1703d"

CASES: list[dict[str, Any]] = [
    {
        "method": "POST",
        "path": "/",
        "query": {"TaskId": "t-123", "OutputOption": "Enabled"},
        "canonical_query": "OutputOption=Enabled&TaskId=t-123",
        "headers": {
            "host": "ros.aliyuncs.com",
            "x-acs-action": "GetAITask",
            "x-acs-version": "2019-09-10",
            "x-acs-date": "2025-01-02T03:04:05Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        },
        "body": "",
        "authorization": "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=8cb8aab8863d66bce2ce352dcb55e14ae96e49db009d71ddcbd76a61b60ae7c8",
    },
    {
        "method": "POST",
        "path": "/",
        "query": {"TaskId": "t-123", "OutputOption": "Enabled"},
        "canonical_query": "OutputOption=Enabled&TaskId=t-123",
        "headers": {
            "host": "ros.aliyuncs.com",
            "x-acs-action": "GetAITask",
            "x-acs-version": "2019-09-10",
            "x-acs-date": "2025-01-02T03:04:05Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "content-type": "application/x-www-form-urlencoded",
        },
        "body": "",
        "authorization": "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=c3fb7c885d28430b6143caca3812e4b30c5b3b4b9a9f8fb86c7065a37c727c37",
    },
    {
        "method": "POST",
        "path": "/",
        "query": {"TaskId": "t-123"},
        "canonical_query": "TaskId=t-123",
        "headers": {
            "host": "ros.aliyuncs.com",
            "x-acs-action": "GetAITask",
            "x-acs-version": "2019-09-10",
            "x-acs-date": "2025-01-02T03:04:05Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "content-type": "application/x-www-form-urlencoded",
        },
        "body": "",
        "authorization": "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=ef7b36ab08c178886aaca2089153a2263584753e15d73acc6639496cb10a45c4",
    },
    {
        "method": "POST",
        "path": "/",
        "query": {"TaskId": "t 1~*", "OutputOption": "Disabled"},
        "canonical_query": "OutputOption=Disabled&TaskId=t%201~%2A",
        "headers": {
            "host": "ros.aliyuncs.com",
            "x-acs-action": "GetAITask",
            "x-acs-version": "2019-09-10",
            "x-acs-date": "2025-01-02T03:04:05Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "content-type": "application/x-www-form-urlencoded",
        },
        "body": "",
        "authorization": "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=2787d24434f3a03aed21f4387efa94f44a5334553ce0423067457bab51029e20",
    },
]
