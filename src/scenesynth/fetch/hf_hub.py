"""Listing files of a Hugging Face repository folder, with the sizes and sha256 the Hub publishes.

The Hub's tree API (`/api/{datasets/}<repo>/tree/<revision>/<folder>`) returns, for
every file stored with Git LFS, its size and sha256 (`lfs.oid`). Downloads of
multi-GB parts are then checked against what the Hub says, not against a hash
this project would have to hard-code (and keep current). Plain git files carry
only a size. Paginated answers (a `Link: <...>; rel="next"` header) are followed.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass

from scenesynth.fetch.download import USER_AGENT, DownloadError

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass(frozen=True)
class HubFile:
    path: str               # path inside the repository
    size: int
    sha256: str | None      # None for files not stored with LFS


def resolve_url(endpoint: str, repo: str, revision: str, path: str, repo_type: str = "dataset") -> str:
    """The download URL of one file (`/datasets/<repo>/resolve/<rev>/<path>` for datasets)."""
    kind = "datasets/" if repo_type == "dataset" else ""
    return f"{endpoint.rstrip('/')}/{kind}{repo}/resolve/{urllib.parse.quote(revision, safe='')}/" \
           f"{urllib.parse.quote(path)}"


def list_folder(endpoint: str, repo: str, revision: str, folder: str, *, repo_type: str = "dataset",
                timeout: float = 60) -> list[HubFile]:
    """Every file directly in ``folder``, sorted by path; raises DownloadError naming the URL."""
    kind = "datasets/" if repo_type == "dataset" else ""
    url = (f"{endpoint.rstrip('/')}/api/{kind}{repo}/tree/{urllib.parse.quote(revision, safe='')}/"
           f"{urllib.parse.quote(folder.strip('/'))}")
    files: list[HubFile] = []
    while url:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                entries = json.loads(response.read())
                link = response.headers.get("Link", "")
        except (OSError, ValueError) as err:
            raise DownloadError(f"{url}: cannot list the Hugging Face folder: {err}") from err
        if not isinstance(entries, list):
            raise DownloadError(f"{url}: expected a JSON list of files, got {type(entries).__name__}")
        for entry in entries:
            if entry.get("type") != "file":
                continue
            lfs = entry.get("lfs") or {}
            files.append(HubFile(entry["path"], int(lfs.get("size", entry.get("size", 0))), lfs.get("oid")))
        match = _NEXT_LINK.search(link)
        url = urllib.parse.urljoin(url, match.group(1)) if match else ""
    return sorted(files, key=lambda f: f.path)
