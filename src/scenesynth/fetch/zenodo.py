"""Files of a Zenodo record, fetched and checked against the size and md5 Zenodo publishes.

Used for the DCASE 2024 Task 7 development set (record 10869644) and the PANNs checkpoint
(record 3987831). The record's JSON (`<api>/records/<id>`) lists each file with its key, size,
`"checksum": "md5:<hex>"` and download link; both the list form of InvenioRDM (`files: [...]`)
and the older `files: {"entries": ...}` form are read.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from scenesynth.fetch.download import USER_AGENT, DownloadError, download, listing_or_saved
from scenesynth.utils.atomic import write_json

ZENODO_API = "https://zenodo.org/api"


@dataclass(frozen=True)
class ZenodoFile:
    key: str
    size: int
    md5: str | None
    url: str


def _file_url(api: str, record: str, key: str, entry: dict) -> str:
    links = entry.get("links") or {}
    return links.get("content") or links.get("self") or \
        f"{api.rstrip('/')}/records/{record}/files/{urllib.parse.quote(key)}/content"


def list_record(api: str, record: str | int, timeout: float = 60) -> list[ZenodoFile]:
    """Every file of a published record; raises DownloadError naming the URL."""
    url = f"{api.rstrip('/')}/records/{record}"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError) as err:
        raise DownloadError(f"{url}: cannot read the Zenodo record: {err}") from err
    entries = data.get("files", [])
    if isinstance(entries, dict):
        entries = list(entries.get("entries", {}).values()) if isinstance(entries.get("entries"), dict) \
            else entries.get("entries", [])
    files = []
    for entry in entries:
        key = entry["key"]
        checksum = entry.get("checksum") or ""
        md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
        files.append(ZenodoFile(key, int(entry["size"]), md5, _file_url(api, str(record), key, entry)))
    if not files:
        raise DownloadError(f"{url}: the record lists no files")
    return sorted(files, key=lambda f: f.key)


def fetch_record(api: str, record: str | int, dest: str | Path, *, keys: list[str] | None = None,
                 **download_options) -> list[Path]:
    """Download the record's files (or only ``keys``) into ``dest``, each verified; returns their paths.

    The listing is saved beside them (`zenodo_record.json`), so a later run without network
    still verifies (and never re-downloads) what is there.
    """
    dest = Path(dest)
    saved = dest / "zenodo_record.json"
    files = listing_or_saved(lambda: list_record(api, record, timeout=download_options.get("timeout", 60)), saved,
                             ZenodoFile)
    if keys is not None:
        missing = sorted(set(keys) - {f.key for f in files})
        if missing:
            raise DownloadError(f"Zenodo record {record} has no file(s) {missing}; it has {[f.key for f in files]}")
        files = [f for f in files if f.key in keys]
    dest.mkdir(parents=True, exist_ok=True)
    write_json(saved, [vars(f) for f in files])
    paths = []
    for item in files:
        if "/" in item.key or item.key.startswith("."):
            raise DownloadError(f"Zenodo record {record}: refusing file key {item.key!r} (not a plain file name)")
        paths.append(download(item.url, dest / item.key, size=item.size, md5=item.md5, **download_options))
    return paths
