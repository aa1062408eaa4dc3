"""The parts of a store that whole-store work reads: what gc, fsck and checkout are
handed instead of the Store facade, so they depend on storage and the catalog only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datastore.catalog.core import Catalog
from datastore.storage.content import ContentStore
from datastore.storage.manifest import ManifestStore
from datastore.storage.objects import ObjectStore


@dataclass(frozen=True, slots=True)
class Parts:
    objects: ObjectStore
    manifests: ManifestStore
    catalog: Catalog
    locks: Path
    content: ContentStore  # objects, packs and the blob index together
