"""botocore's errors (and a hostile answer's parse errors) as the provider's ApiError, mapped once.

Used by every client on botocore: the HealthOmics, CloudWatch Logs and S3 clients. Imports
botocore lazily: a hook module imports this one before it needs botocore.
"""

from __future__ import annotations

from airflow_task_runs.core.errors import ApiError, model_problem

#: error codes that mean the credentials, the signature or the permissions are wrong
AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        # STS (query protocol: no "Exception"), when the connection's role is assumed
        "AccessDenied",
        "InvalidClientTokenId",
        "ExpiredToken",
        "SignatureDoesNotMatch",
    }
)


def error_hint(code: str | None, *, not_found: bool = True) -> str:
    """What to check after an AWS error ``code`` (``"; check ..."``, or ``""``), for the worker's boto3
    calls (:func:`api_error`) and the triggerer's HealthOmics calls (``aws.omics_rest``) alike.

    ``not_found``: whether a ``ResourceNotFoundException`` is about a HealthOmics run or task id.
    """
    if code == "ResourceNotFoundException" and not_found:
        return "; check the run id / task id and the region of the connection"
    if code in AUTH_CODES:
        return "; check the aws connection's credentials and that its role allows this call"
    return ""


def _transport_hint(exc: Exception, host: str | None) -> str:
    """What a botocore transport error means, and what to check."""
    from botocore import exceptions as bx

    where = host or "the endpoint"
    if isinstance(exc, bx.EndpointConnectionError):
        return (
            f"cannot connect to {where} ({exc}): check the connection's region and endpoint_url, DNS, and that "
            "this machine can reach it (firewall, proxy, VPC endpoint)"
        )
    if isinstance(exc, bx.ConnectTimeoutError):
        return f"could not connect to {where} within connect_timeout: check the endpoint and the network to it"
    if isinstance(exc, bx.ReadTimeoutError):
        return f"{where} sent nothing for read_timeout: check the service's health, or raise read_timeout"
    if isinstance(exc, (bx.ConnectionClosedError, bx.ResponseStreamingError, bx.IncompleteReadError)):
        return f"the connection to {where} broke mid-answer ({exc}): check any proxy in between and retry"
    if isinstance(exc, bx.SSLError):
        return f"TLS with {where} failed ({exc}): check verify (a CA bundle path) and the endpoint's scheme"
    if isinstance(exc, bx.ProxyConnectionError):
        return f"the proxy to {where} refused the connection ({exc}): check HTTPS_PROXY / NO_PROXY"
    if isinstance(exc, bx.NoRegionError):
        return f"{exc}: set region_name in the aws connection's extra (or pass region_name)"
    if isinstance(exc, bx.ProfileNotFound):
        return f"{exc}: check profile_name in the aws connection's extra and the AWS config files where this runs"
    return f"{type(exc).__name__} talking to {where}: {exc}"


def api_error(
    exc: BaseException,
    operation: str,
    what: str = "",
    cloud: str = "AWS",
    host: str | None = None,
    *,
    hint_not_found: bool = False,
) -> BaseException:
    """A botocore (or parse) error as the core :class:`ApiError`: cloud, host, operation, code, request id."""
    from botocore.exceptions import BotoCoreError, ClientError, CredentialRetrievalError, NoCredentialsError
    from pydantic import ValidationError

    from airflow_task_runs.core.errors import MalformedResponseError

    suffix = f" ({what})" if what else ""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        status = meta.get("HTTPStatusCode")
        code = err.get("Code") or None
        message = err.get("Message") or f"{operation} failed"
        return ApiError(
            cloud=cloud,
            status_code=int(status) if status is not None else None,
            code=code,
            message=f"{operation}{suffix}: {message}{error_hint(code, not_found=hint_not_found)}",
            request_id=meta.get("RequestId") or None,
            retryable=code in ("ThrottlingException", "InternalServerException", "RequestTimeoutException"),
            host=host,
        )
    if isinstance(exc, (NoCredentialsError, CredentialRetrievalError)):
        if isinstance(exc, NoCredentialsError):
            code = "NoCredentials"
            words = (
                "no AWS credentials found; set them in the aws connection (login/password or role_arn) or in the "
                "worker's environment"
            )
        else:  # a refresh failed: a botocore fetcher, or a refresher's own error (aws.omics_rest, words left out)
            code = type(exc).__name__
            words = (
                f"{exc}; check the aws connection's role_arn and assume_role_method, and what they use where this "
                "runs (a web identity token file, a profile, a credential_process)"
            )
        return ApiError(cloud=cloud, status_code=None, code=code, message=f"{operation}{suffix}: {words}", host=host)
    if isinstance(exc, BotoCoreError):
        return ApiError(
            cloud=cloud,
            status_code=None,
            code=type(exc).__name__,
            message=f"{operation}{suffix}: {_transport_hint(exc, host)}",
            host=host,
        )
    if isinstance(exc, (ValidationError, RecursionError)):
        problem = model_problem(exc)
        return MalformedResponseError(
            cloud=cloud,
            status_code=200,
            code=None,
            message=f"{operation}{suffix}: the answer is not what the API page describes ({problem})",
            host=host,
        )
    return exc
