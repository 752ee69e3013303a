"""What a fetch operator wrote, made visible: Airflow Asset events and OpenLineage datasets.

:class:`WritesOutputs` is mixed into every fetch operator. It owns the ``destination`` /
``destination_conn_id`` / ``asset_alias`` parameters: a literal destination is checked at DAG
parse time (and becomes the task's static Asset outlet), a templated one before any cloud call.
Each written URI is added as an Asset event to the user's ``AssetAlias``, and reported to
OpenLineage (when its provider is installed) as an output dataset, the cloud run being the input.

Imported by operator modules on every DAG parse: Airflow's asset classes only, nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_task_runs.core.ids import is_templated
from airflow_task_runs.core.outputs import check_destination_text

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_task_runs.core.outputs import Destination

#: template fields every fetch operator adds to its own
OUTPUT_TEMPLATE_FIELDS: tuple[str, ...] = ("destination", "destination_conn_id")


def _split(uri: str) -> tuple[str, str, str]:
    """(scheme, location, path) of an output's URI, split by hand: an object key may hold ``#``
    or ``?``, which a URI parser would cut off as a fragment or a query."""
    scheme, _, rest = uri.partition("://")
    location, slash, path = rest.partition("/")
    return scheme.lower(), location, slash + path


def asset_uri(uri: str) -> str:
    """An output's URI as an Asset URI: ``%``, ``#`` and ``?`` in its path percent-encoded, so
    ``s3://b/a#1.csv`` stays that object instead of becoming the Asset ``s3://b/a``."""
    scheme, location, path = _split(uri)
    path = path.replace("%", "%25").replace("#", "%23").replace("?", "%3F")
    return f"{scheme}://{location}{path}"


def static_asset_uri(destination: Any) -> str | None:
    """The Asset URI of a literal destination (without its ``conn_id@`` part); None when templated."""
    if destination is None or is_templated(destination):
        return None
    scheme, location, path = _split(str(destination))
    return asset_uri(f"{scheme}://{location.rpartition('@')[2]}{path}")


def openlineage_dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a written object, as OpenLineage's naming spec has it.

    ``s3://bucket/key`` -> (``s3://bucket``, ``key``); ``file:///a/b`` -> (``file``, ``/a/b``).
    """
    scheme, location, path = _split(uri)
    if scheme in ("file", "local", ""):
        return "file", path
    return f"{scheme}://{location}", path.lstrip("/")


class WritesOutputs:
    """Mixin for fetch operators (put it before ``BaseOperator``)."""

    destination: ObjectStoragePath | str | None
    destination_conn_id: str | None
    asset_alias: str | None
    outlets: Any

    def _init_outputs(
        self,
        destination: ObjectStoragePath | str | None,
        destination_conn_id: str | None,
        asset_alias: str | None,
    ) -> None:
        from airflow_task_runs.core.errors import DestinationConfigError

        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.asset_alias = asset_alias
        self.written_uris: list[str] = []
        self._lineage_input: tuple[str, str] | None = None
        if destination is not None and not is_templated(destination):
            check_destination_text(destination, "destination")
        literal_conn = destination_conn_id is not None and not is_templated(destination_conn_id)
        if literal_conn and (not isinstance(destination_conn_id, str) or not destination_conn_id.strip()):
            raise DestinationConfigError(
                f"destination_conn_id {destination_conn_id!r} is not a connection id: name a connection "
                "(e.g. 'aws_default'), or leave it None to use the URI's conn_id@ part or the default chain"
            )
        if asset_alias is not None and (not isinstance(asset_alias, str) or not asset_alias.strip()):
            raise DestinationConfigError(f"asset_alias {asset_alias!r} must be a non-empty name")
        if destination is None and asset_alias:
            raise DestinationConfigError(
                f"asset_alias {asset_alias!r} needs a destination: outputs returned through XCom are not assets"
            )
        self.outlets = [*(self.outlets or []), *self._output_outlets()]

    def _output_outlets(self) -> list[Any]:
        from airflow.sdk import Asset, AssetAlias

        if self.asset_alias:
            return [AssetAlias(self.asset_alias)]
        uri = static_asset_uri(self.destination)
        if uri is None:
            return []
        if any(getattr(outlet, "uri", None) == Asset(uri).uri for outlet in self.outlets or []):
            return []
        return [Asset(uri)]

    def resolve_output(self) -> Destination | None:
        """The checked destination (None: XCom). Call first in ``execute``, before any cloud call."""
        if self.destination is None:
            return None
        from airflow_task_runs.core.outputs import resolve_destination

        return resolve_destination(self.destination, self.destination_conn_id)

    def set_lineage_input(self, namespace: str, name: str) -> None:
        """The cloud run this task read, for OpenLineage (``nclue://<host>``, ``task-runs/<id>``)."""
        self._lineage_input = (namespace, name)

    def record_outputs(self, context: Context, uris: Sequence[str]) -> None:
        """Remember what was written (OpenLineage) and add it to the task's AssetAlias."""
        self.written_uris = list(uris)
        if not self.asset_alias or not uris:
            return
        from airflow.sdk import Asset, AssetAlias

        events = context["outlet_events"][AssetAlias(self.asset_alias)]
        for uri in uris:
            events.add(Asset(asset_uri(uri)))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the cloud run as the input dataset, every written object as an output."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        inputs = [Dataset(*self._lineage_input)] if self._lineage_input else []
        outputs = [Dataset(*openlineage_dataset_name(uri)) for uri in self.written_uris]
        return OperatorLineage(inputs=inputs, outputs=outputs)
