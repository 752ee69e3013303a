"""Read a profile of an OCI config file (``~/.oci/config``), the INI format the OCI CLI and SDKs use.

Keys (Oracle's "SDK and CLI Configuration File"): ``user``, ``fingerprint``, ``key_file``,
``tenancy``, ``region``, optional ``pass_phrase``; a profile inherits ``[DEFAULT]``.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

CONFIG_KEYS = ("user", "fingerprint", "key_file", "tenancy", "region", "pass_phrase")
DEFAULT_CONFIG_FILE = "~/.oci/config"
DEFAULT_PROFILE = "DEFAULT"


class OciConfigFileError(ValueError):
    """The config file or profile cannot be used; the message says which and why."""


def read_config_file(path: str = DEFAULT_CONFIG_FILE, profile: str = DEFAULT_PROFILE) -> dict[str, str]:
    """The profile's known keys (``key_file`` expanded relative to the config file's folder)."""
    file = Path(os.path.expanduser(path))
    if not file.is_file():
        raise OciConfigFileError(f"config file {str(file)!r} does not exist or is not a file")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(file, encoding="utf-8")
    except configparser.Error as exc:
        raise OciConfigFileError(f"config file {str(file)!r} is not valid INI ({type(exc).__name__})") from None
    if profile != DEFAULT_PROFILE and not parser.has_section(profile):
        known = ", ".join([DEFAULT_PROFILE, *parser.sections()])
        raise OciConfigFileError(f"profile {profile!r} is not in {str(file)!r} (profiles: {known})")
    section = parser[profile] if profile != DEFAULT_PROFILE else parser.defaults()
    values = {key: section[key].strip() for key in CONFIG_KEYS if section.get(key)}
    if "key_file" in values:
        key_file = Path(os.path.expanduser(values["key_file"]))
        if not key_file.is_absolute():
            key_file = file.parent / key_file
        values["key_file"] = str(key_file)
    return values
