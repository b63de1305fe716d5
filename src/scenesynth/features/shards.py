"""Log-mel clips in WebDataset tar shards: a deterministic, atomic writer and a reader.

Why shards: training streams ~50 k clips of 512 KiB each; a few large sequential
tar files read far faster (and copy to a cluster far more easily) than 50 k small
files. Why this care in the writer:

- atomic: each shard is written under a temporary name beside its final name and
  renamed when complete (``scenesynth.utils.atomic.atomic_path``), and
  ``index.json`` is removed first and written last, so an interrupted run leaves
  no index and readers refuse the half-written set instead of reading it;
- deterministic: fixed tar member mtime/owner/mode and canonical JSON, so the
  same samples give byte-identical shards (DVC and Snakemake see no change).

Layout of ``out_dir`` (one shard set per folder): ``{prefix}-000000.tar`` ...
plus ``index.json``. Each sample is two tar members, ``<key>.mel.npy`` (float16
[n_mels, n_frames]) and ``<key>.json`` (its metadata).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import webdataset as wds
from webdataset import shardlists
from webdataset.filters import pipelinefilter
from webdataset.tariterators import group_by_keys, tar_file_expander

from scenesynth.utils.atomic import atomic_path, write_json

INDEX_NAME = "index.json"
MEL_EXT = "mel.npy"
META_EXT = "json"
MEL_DTYPE = np.dtype(np.float16)
# Fixed tar header fields: a tar written with the wall clock as mtime differs every run.
_TAR_FIXED = dict(mtime=0.0, user="scenesynth", group="scenesynth", mode=0o444)
# USTAR member names are at most 100 bytes; "<key>.mel.npy" must fit.
_MAX_KEY_LEN = 100 - len("." + MEL_EXT)
# WebDataset splits a member name at the first dot of its basename, so a key must
# have no dot; "/" is allowed as a folder separator, as in WebDataset.
_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*(/[A-Za-z0-9][A-Za-z0-9_\-]*)*")


# --------------------------------------------------------------------------- writing
def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key) or len(key) > _MAX_KEY_LEN:
        raise ValueError(
            f"invalid sample key {key!r}: need letters, digits, '_', '-' (and '/' between parts), "
            f"no dots, at most {_MAX_KEY_LEN} characters"
        )
    return key


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON serialisable")


def encode_meta(meta: dict) -> bytes:
    """Canonical JSON (sorted keys, strict: no NaN) so equal dicts give equal bytes."""
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_json_default)
    return text.encode("utf-8")


def encode_mel(mel: np.ndarray) -> bytes:
    """.npy bytes of a float16 2-D array (no pickle, so readers never unpickle)."""
    mel = np.asarray(mel)
    if mel.dtype != MEL_DTYPE or mel.ndim != 2:
        raise ValueError(f"mel must be a 2-D float16 array, got {mel.dtype} {mel.shape}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(mel), allow_pickle=False)
    return buffer.getvalue()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _AtomicShardFiles:
    """``opener``/``post`` hooks for ``wds.ShardWriter`` that write each shard atomically.

    ShardWriter opens a shard by name through ``open`` and calls ``finish`` with
    that name once the tar stream is closed; we then close our file, hash it, and
    rename it onto its final name. A shard that got no sample (ShardWriter opens
    the first one eagerly) is discarded.
    """

    def __init__(self) -> None:
        self._open: dict[str, tuple[contextlib.AbstractContextManager, Path, io.BufferedWriter]] = {}
        self.counts: dict[str, int] = {}
        self.finished: list[dict[str, Any]] = []
        self.discard = False  # set after an error: nothing more is renamed into place

    def open(self, fname: str) -> io.BufferedWriter:
        guard = atomic_path(fname)
        tmp = guard.__enter__()
        handle = open(tmp, "wb")
        self._open[fname] = (guard, tmp, handle)
        self.counts[fname] = 0
        return handle

    def finish(self, fname: str) -> None:
        guard, tmp, handle = self._open.pop(fname)
        handle.close()
        if self.discard or self.counts[fname] == 0:
            guard.__exit__(RuntimeError, RuntimeError("shard discarded"), None)  # deletes tmp
            return
        sha = _sha256(tmp)
        guard.__exit__(None, None, None)  # os.replace(tmp, fname)
        self.finished.append({"name": Path(fname).name, "n_samples": self.counts[fname], "sha256": sha})

    def abort(self) -> None:
        """Close and delete every temporary file still open (after an error)."""
        for fname in list(self._open):
            guard, _tmp, handle = self._open.pop(fname)
            handle.close()
            guard.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_shards(
    samples: Iterable[dict], out_dir: Path, shard_size: int, prefix: str = "train", extra: dict | None = None
) -> dict[str, Any]:
    """Write samples {key, mel, meta} to ``out_dir/{prefix}-NNNNNN.tar`` and ``index.json``.

    ``shard_size`` is the number of samples per shard. All mels must share one
    shape. Keys must be unique. Shards of an earlier run with the same prefix that
    this run does not produce are deleted, so the folder matches its index.
    ``extra`` adds entries to the index (how the samples were made).
    Returns the index dict (also written to ``out_dir/index.json``).
    """
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", prefix):
        raise ValueError(f"invalid shard prefix {prefix!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INDEX_NAME).unlink(missing_ok=True)  # no index while the set is inconsistent

    files = _AtomicShardFiles()
    seen_keys: set[str] = set()
    shape: tuple[int, ...] | None = None
    writer = None
    try:
        writer = wds.ShardWriter(
            str(out_dir / f"{prefix}-%06d.tar"),
            maxcount=shard_size,
            maxsize=math.inf,  # split by count only, so shard contents do not depend on sizes
            opener=files.open,
            post=files.finish,
            verbose=0,
            encoder=False,  # members are encoded here (canonical bytes), not by webdataset
            **_TAR_FIXED,
        )
        for sample in samples:
            unknown = set(sample) - {"key", "mel", "meta"}
            if unknown:
                raise ValueError(f"unexpected sample fields {sorted(unknown)}")
            key = _check_key(sample["key"])
            if key in seen_keys:
                raise ValueError(f"duplicate sample key {key!r}")
            seen_keys.add(key)
            mel = np.asarray(sample["mel"])
            if shape is None:
                shape = mel.shape
            elif mel.shape != shape:
                raise ValueError(f"sample {key!r}: mel shape {mel.shape} differs from {shape}")
            writer.write({"__key__": key, MEL_EXT: encode_mel(mel), META_EXT: encode_meta(sample["meta"])})
            files.counts[writer.fname] += 1
        writer.close()  # finishes (renames) the last shard
    except BaseException:
        # ShardWriter.close would rename the partial shard into place: discard instead.
        files.discard = True
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        files.abort()
        raise

    written = {entry["name"] for entry in files.finished}
    for stale in out_dir.glob(f"{prefix}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"):
        if stale.name not in written:
            stale.unlink()

    n_mels, n_frames = shape if shape is not None else (None, None)
    index = {
        "prefix": prefix,
        "shards": files.finished,
        "n_samples": sum(entry["n_samples"] for entry in files.finished),
        "n_mels": n_mels,
        "n_frames": n_frames,
        "dtype": MEL_DTYPE.name,
        "members": {"mel": MEL_EXT, "meta": META_EXT},
        **(extra or {}),
    }
    write_json(out_dir / INDEX_NAME, index)
    return index


# --------------------------------------------------------------------------- reading
def read_index(out_dir: Path) -> dict[str, Any]:
    """The shard set's ``index.json``; missing means the set was never completed."""
    path = Path(out_dir) / INDEX_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: shards missing or their writing did not finish")
    return json.loads(path.read_text())


def shard_paths(out_dir: Path) -> list[Path]:
    """Shard files listed in the index, in order (not a glob: stray files are ignored)."""
    out_dir = Path(out_dir)
    return [out_dir / entry["name"] for entry in read_index(out_dir)["shards"]]


def verify_shards(out_dir: Path) -> None:
    """Raise if a listed shard is missing or its sha256 differs from the index."""
    out_dir = Path(out_dir)
    for entry in read_index(out_dir)["shards"]:
        path = out_dir / entry["name"]
        if not path.exists():
            raise FileNotFoundError(f"shard {path} listed in the index is missing")
        if _sha256(path) != entry["sha256"]:
            raise ValueError(f"shard {path} does not match the sha256 in its index")


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw WebDataset sample -> {key, mel (np.float16), meta (dict)}."""
    mel = np.load(io.BytesIO(sample[MEL_EXT]), allow_pickle=False)
    meta = json.loads(sample[META_EXT].decode("utf-8"))
    return {"key": sample["__key__"], "mel": mel, "meta": meta}


def _derived_seed(seed: int, epoch: int, purpose: str) -> int:
    """Independent 63-bit seeds for shard and sample shuffling from (seed, epoch)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _open_local_shards(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Open each local shard and close it once the next one is asked for.

    Replaces webdataset's ``StreamingOpen``, which leaves every file to the
    garbage collector (a ResourceWarning per shard) and, through
    ``wds.WebDataset``, silently caches shards when ``WDS_CACHE`` is set.
    """
    for item in items:
        url = item["url"]
        with open(url, "rb") as stream:
            yield {"url": url, "stream": stream, "local_path": url}


def make_webdataset(
    paths: Sequence[Path | str],
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    sample_buffer: int = 64,
    nodesplitter: Callable | None = shardlists.single_node_only,
    workersplitter: Callable | None = shardlists.split_by_worker,
) -> wds.FluidWrapper:
    """A webdataset pipeline (a torch ``IterableDataset``) yielding decoded samples.

    The stages are those of ``wds.WebDataset`` (shard list, node and worker
    splitting, shard shuffle, tar expansion, grouping by key) with a local-file
    opener that closes its files and never fetches or caches anything.

    Splitting: webdataset's defaults, i.e. shards are split between DataLoader
    workers (``split_by_worker``) and multi-node runs raise
    (``single_node_only``); pass ``shardlists.split_by_node`` for DDP. Shuffling:
    shard order with a seeded deterministic shuffle, then samples through a
    seeded buffer of ``sample_buffer`` clips (each 512 KiB; webdataset's default
    1000 would hold 0.5 GB). Iterating the same object again changes the shard
    order (webdataset's ``detshuffle`` bumps its epoch); ``epoch`` varies a fresh
    object's order.
    """
    urls = [str(Path(p)) for p in paths]
    if not urls:
        raise ValueError("no shard paths given")
    for url in urls:
        if not Path(url).is_file():
            raise FileNotFoundError(f"shard {url} not found")
    dataset = wds.FluidWrapper(wds.SimpleShardList(urls))
    for splitter in (nodesplitter, workersplitter):
        if splitter is not None:
            dataset.append(splitter)
    if shuffle:
        dataset.append(wds.detshuffle(len(urls), initial=len(urls), seed=_derived_seed(seed, epoch, "shards")))
    dataset.append(_open_local_shards)
    dataset.append(pipelinefilter(tar_file_expander)())
    dataset.append(pipelinefilter(group_by_keys)())
    if shuffle:
        dataset.append(wds.shuffle(sample_buffer, seed=_derived_seed(seed, epoch, "samples")))
    return dataset.map(decode_sample)


def iter_shard_samples(
    shard_paths: Sequence[Path | str], shuffle: bool = False, seed: int = 0, epoch: int = 0
) -> Iterator[dict[str, Any]]:
    """Yield {key, mel, meta} from shards: in written order, or shuffled reproducibly."""
    yield from make_webdataset(shard_paths, shuffle=shuffle, seed=seed, epoch=epoch)
