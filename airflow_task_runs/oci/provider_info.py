"""Oracle OCI's part of the provider metadata (plain data: read without importing the hook)."""

from __future__ import annotations

from typing import Any

from airflow_task_runs.core.conn_fields import max_output_bytes_field

INTEGRATION = "Oracle OCI AI Data Platform"

PROVIDER_INFO: dict[str, Any] = {
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": "https://docs.oracle.com/en-us/iaas/api/#/en/ai-data-platform/20260430/",
            "tags": ["service"],
        }
    ],
    "connection-types": [
        {
            "connection-type": "oci",
            "hook-class-name": "airflow_task_runs.oci.hooks.OciAiDataPlatformHook",
            "hook-name": "Oracle OCI AI Data Platform",
            "conn-fields": {
                "tenancy": {
                    "label": "Tenancy OCID",
                    "description": "tenancy= in ~/.oci/config (ocid1.tenancy.oc1..).",
                    "schema": {"type": ["string", "null"]},
                },
                "fingerprint": {
                    "label": "API key fingerprint",
                    "description": "fingerprint= in ~/.oci/config (16 colon-separated hex bytes).",
                    "schema": {"type": ["string", "null"]},
                },
                "region": {
                    "label": "Region",
                    "description": "region= in ~/.oci/config, e.g. us-ashburn-1.",
                    "schema": {"type": ["string", "null"]},
                },
                "key_file": {
                    "label": "Private key file",
                    "description": "key_file= in ~/.oci/config; used when Password (the PEM text) is empty.",
                    "schema": {"type": ["string", "null"]},
                },
                "passphrase": {
                    "label": "Private key pass phrase",
                    "description": "pass_phrase= in ~/.oci/config, for an encrypted key (extra key passphrase, "
                    "a name Airflow redacts in the UI and API).",
                    "schema": {"type": ["string", "null"], "format": "password"},
                },
                "endpoint": {
                    "label": "Endpoint override",
                    "description": "AI Data Platform URL; default https://aidp.{region}.oci.oraclecloud.com.",
                    "schema": {"type": ["string", "null"]},
                },
                "auth_type": {
                    "label": "Auth type",
                    "description": "api_key, or instance_principal / resource_principal (needs the oci-sdk extra).",
                    "schema": {
                        "type": ["string", "null"],
                        "default": "api_key",
                        "enum": ["api_key", "instance_principal", "resource_principal"],
                    },
                },
                "config_file": {
                    "label": "OCI config file",
                    "description": "Read the fields above from this file (e.g. ~/.oci/config) instead.",
                    "schema": {"type": ["string", "null"]},
                },
                "profile": {
                    "label": "Config file profile",
                    "schema": {"type": ["string", "null"], "default": "DEFAULT"},
                },
                "max_output_bytes": max_output_bytes_field(),
            },
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port", "host"],
                "relabeling": {"login": "User OCID", "password": "API private key (PEM)"},
                "placeholders": {
                    "login": "ocid1.user.oc1..aaaa...",
                    "password": "-----BEGIN PRIVATE KEY-----",
                    "extra": '{"tenancy": "ocid1.tenancy.oc1..", "fingerprint": "12:34:..", "region": "us-ashburn-1"}',
                },
            },
        }
    ],
    "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.oci.hooks"]}],
    "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.oci.sensors"]}],
    "operators": [{"integration-name": INTEGRATION, "python-modules": ["airflow_task_runs.oci.operators"]}],
    "extra-links": [
        "airflow_task_runs.oci.links.OciTaskRunLink",
        "airflow_task_runs.oci.links.OciExperimentRunLink",
    ],
}
