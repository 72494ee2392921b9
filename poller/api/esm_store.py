"""How API-made mappings are kept (DESIGN §1.9, §2 `state/`): one JSON record per UUID.

The state backends store opaque text by UUID (`ApiMappingStore`); this module owns the record's
shape, so a backend never needs to know what an event source mapping is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


class ApiMappingStore(Protocol):
    """What a state backend offers for API-made mappings (SQLite and DynamoDB both do)."""

    async def api_mappings(self) -> dict[str, str]:
        """Every stored mapping: UUID → its JSON body."""
        ...

    async def put_api_mapping(self, uuid: str, body: str) -> None: ...

    async def delete_api_mapping(self, uuid: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ApiMappingRecord:
    """One API-made mapping as stored: its document (the YAML shape, `Name` included, `Tags`
    kept apart so tagging never restarts it), its tags and when it last changed."""

    uuid: str
    document: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    last_modified: float = 0.0

    @property
    def name(self) -> str:
        return str(self.document["Name"])

    def to_json(self) -> str:
        body = {"Document": self.document, "Tags": self.tags, "LastModified": self.last_modified}
        return orjson.dumps(body).decode()

    @classmethod
    def from_json(cls, uuid: str, text: str) -> ApiMappingRecord:
        body = orjson.loads(text)
        return cls(uuid, dict(body["Document"]), dict(body.get("Tags") or {}), float(body["LastModified"]))


async def load_records(store: ApiMappingStore) -> dict[str, ApiMappingRecord]:
    """Every stored record by UUID."""
    return {
        uuid: ApiMappingRecord.from_json(uuid, text) for uuid, text in (await store.api_mappings()).items()
    }
