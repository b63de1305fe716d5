"""A small copy of the paper's data sources, laid out as the real servers serve them.

`build_remote(root)` writes, under one folder served on 127.0.0.1:
- GitHub raw: ``cdjkim/audiocaps/master/dataset/{train,val,test}.csv`` (the official columns);
- Zenodo: the record JSON ``api/records/10869644`` of the DCASE dev set (captions.csv + embeddings.tar.xz);
- Hugging Face: ``datasets/cvssp/WavCaps/resolve/main/...`` (as_final.json, a blacklist, and the
  AudioSet_SL split zip with FLAC members under the real long ``mnt/...`` prefix), plus the tree
  API answer ``api/datasets/cvssp/WavCaps/tree/main/Zip_files/AudioSet_SL`` with LFS sizes/sha256;
and a fake ``yt-dlp`` whose behaviour depends on the video id (see FAKE_YT_DLP).

The ids are chosen so every rule of the acquisition is exercised; `EXPECTED` lists the outcome.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

MEMBER_PREFIX = "mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/AudioSet_SL_flac/"
HF = "datasets/cvssp/WavCaps/resolve/main"

# AudioCaps (11-character YouTube ids; the fake yt-dlp fails for ids starting "priv").
AC_TRAIN = [(101, "acGood00001", 30, "A dog barks twice"), (102, "privVideo01", 0, "Rain on a roof"),
            (103, "bothSources", 10, "An engine idles"), (104, "acGood00002", 5, "Birds sing; rm -rf / `x`"),
            (105, "acGood00001", 30, "A dog barks at the mail carrier")]  # a second caption of one video
AC_VAL = [(201, "acValid0001", 0, "People talk")]
AC_TEST = [(301, "acTestClip1", 0, "A siren wails")]
# WavCaps AudioSet_SL: caption entries and which have audio in the archive.
WC_ENTRIES = {
    "wcGood00001": "Water flows",            # kept
    "wcGood00002": "A crowd cheers",          # kept
    "bothSources": "Engine noise",            # in AudioCaps too: the AudioCaps row wins
    "wcBlacklst1": "A bell rings",            # in the WavCaps blacklist
    "acTestClip1": "Siren",                   # an AudioCaps test clip: always excluded
    "wcNoAudio01": "Wind",                    # listed but not in the archive
    "wcCorrupt01": "Thunder",                 # in the archive, unreadable FLAC
}
EXPECTED = {
    "audiocaps_keys": {"ac_acGood00001", "ac_acGood00002", "ac_bothSources"},
    "audiocaps_failed": {"privVideo01": "private"},
    "wavcaps_keys": {"wc_wcGood00001", "wc_wcGood00002", "wc_bothSources"},
    "merged_keys": {"ac_acGood00001", "ac_acGood00002", "ac_bothSources", "wc_wcGood00001", "wc_wcGood00002"},
}

FAKE_YT_DLP = textwrap.dedent(f"""\
    #!{sys.executable}
    # Stand-in for yt-dlp: writes a 10 s clip at 44.1 kHz, or fails like YouTube does for "priv*" ids.
    import sys
    import numpy as np, soundfile as sf
    args = sys.argv[1:]
    vid = args[args.index("--") + 1].split("v=")[1]
    out = args[args.index("-o") + 1].replace("%(ext)s", "flac")
    if vid.startswith("priv"):
        sys.exit(print("ERROR: [youtube] " + vid + ": Private video. Sign in if you have access", file=sys.stderr) or 1)
    rng = np.random.default_rng(sum(map(ord, vid)))
    sf.write(out, (0.1 * rng.standard_normal(44100 * 10)).astype(np.float32), 44100, format="FLAC")
""")


def flac_bytes(seed: int, seconds: float = 0.5, sample_rate: int = 32_000) -> bytes:
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * sample_rate)).astype("float32")
    buffer = io.BytesIO()
    sf.write(buffer, noise, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def write_csv(path: Path, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["audiocap_id,youtube_id,start_time,caption"]
    lines += [f'{cap_id},{yid},{start},"{caption}"' for cap_id, yid, start, caption in rows]
    path.write_text("\n".join(lines) + "\n")


def split_zip(members: dict[str, bytes], folder: Path, name: str, part_size: int) -> list[Path]:
    """A split archive the way Info-ZIP's ``zip -s`` writes it (reuses the archive tests' converter)."""
    sys.path.insert(0, str(Path(__file__).parent / "fetch"))
    from test_archive import make_split_zip

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data, compress_type=zipfile.ZIP_STORED)
    return make_split_zip(folder / f"{name}.zip", part_size)


DEV_PROMPTS = [("001", "A dog barks with water in the background"),
               ("002", "A car horn honks with traffic in the background"),
               ("003", "People cheer with crowd in the background")]
#: The published reference embeddings' models, as fadtk stores them: (rows per clip, dimension), float16.
PUBLISHED_MODELS = {"panns-wavegram-logmel": (1, 2048), "vggish": (4, 128)}


def published_vectors(model: str, index: int) -> np.ndarray:
    """The reference embedding of dev prompt ``index``: non-negative (PANNs' `embedding` is a ReLU output)."""
    rows, dim = PUBLISHED_MODELS[model]
    rng = np.random.default_rng([index, dim])
    return np.maximum(rng.normal(0.0, 1.0, (rows, dim)), 0.0).astype(np.float16)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def embeddings_archive(path: Path, extra: list[tarfile.TarInfo] | None = None) -> Path:
    """``embeddings.tar.xz`` in the record's layout: embeddings/<model>/<prompt id>.npy (+ ``extra`` members)."""
    with tarfile.open(path, "w:xz") as tar:
        for model in PUBLISHED_MODELS:
            for index, (pid, _) in enumerate(DEV_PROMPTS):
                data = npy_bytes(published_vectors(model, index))
                info = tarfile.TarInfo(f"embeddings/{model}/{pid}.npy")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def zenodo_record(root: Path, base_url: str) -> None:
    """Zenodo's record JSON for the dev set (files with size + md5 + link) and the files themselves:
    captions.csv and embeddings.tar.xz, as record 10869644 publishes them (no audio)."""
    files = root / "zenodo-files"
    files.mkdir(parents=True)
    lines = ["id,caption"] + [f"{pid}.wav,{caption}" for pid, caption in DEV_PROMPTS]
    (files / "captions.csv").write_text("\n".join(lines) + "\n")
    embeddings_archive(files / "embeddings.tar.xz")
    write_zenodo_listing(root, base_url)


def write_zenodo_listing(root: Path, base_url: str) -> None:
    """(Re)write the record JSON from the files served under ``zenodo-files/``."""
    files = root / "zenodo-files"
    entries = [{"key": p.name, "size": p.stat().st_size, "checksum": "md5:" + hashlib.md5(p.read_bytes()).hexdigest(),
                "links": {"self": f"{base_url}/zenodo-files/{p.name}"}} for p in sorted(files.iterdir())]
    (root / "api/records").mkdir(parents=True, exist_ok=True)
    (root / "api/records/10869644").write_text(json.dumps({"id": 10869644, "files": entries}))


def build_remote(root: Path, base_url: str) -> Path:
    """Write the served tree under ``root`` (served at ``base_url``); returns ``root``."""
    zenodo_record(root, base_url)
    for split, rows in (("train", AC_TRAIN), ("val", AC_VAL), ("test", AC_TEST)):
        write_csv(root / "cdjkim/audiocaps/master/dataset" / f"{split}.csv", rows)
    hf = root / HF
    (hf / "json_files/AudioSet_SL").mkdir(parents=True)
    (hf / "json_files/AudioSet_SL/as_final.json").write_text(json.dumps(
        {"num_captions_per_audio": 1,
         "data": [{"id": f"Y{yid}.wav", "caption": caption, "audio": "wav_path", "duration": 10.0}
                  for yid, caption in WC_ENTRIES.items()]}))
    (hf / "json_files/blacklist").mkdir(parents=True)
    (hf / "json_files/blacklist/blacklist_exclude_test_ac.json").write_text(
        json.dumps({"AudioSet": ["YwcBlacklst1.wav"], "FreeSound": ["12345"]}))
    members = {f"{MEMBER_PREFIX}Y{yid}.flac": flac_bytes(i) for i, yid in enumerate(WC_ENTRIES)
               if yid != "wcNoAudio01"}
    members[f"{MEMBER_PREFIX}YwcCorrupt01.flac"] = b"fLaC" + bytes(200)
    parts = split_zip(members, hf / "Zip_files/AudioSet_SL", "AudioSet_SL", part_size=40_000)
    assert len(parts) >= 3, "the fixture should span several parts"
    tree = [{"type": "file", "oid": hashlib.sha1(p.read_bytes()).hexdigest(), "size": p.stat().st_size,
             "path": f"Zip_files/AudioSet_SL/{p.name}",
             "lfs": {"oid": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size,
                     "pointerSize": 134}} for p in parts]
    api = root / "api/datasets/cvssp/WavCaps/tree/main/Zip_files"
    api.mkdir(parents=True)
    (api / "AudioSet_SL").write_text(json.dumps(tree))
    return root


def install_fake_yt_dlp(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "yt-dlp"
    path.write_text(FAKE_YT_DLP)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def source_overlay(base_url: str, yt_dlp: Path) -> dict:
    """The `data` settings that point the real acquisition code at the local server."""
    return {"data": {
        "source": "audiocaps_wavcaps",
        "audiocaps": {"csv_url": f"{base_url}/cdjkim/audiocaps/master/dataset/{{split}}.csv",
                      "yt_dlp": str(yt_dlp), "workers": 2, "timeout": 30, "retries": 1, "backoff": 0.01},
        "wavcaps": {"endpoint": base_url},
        "dcase_dev": {"api": f"{base_url}/api"},
        "download": {"timeout": 10, "retries": 1, "backoff": 0.01},
    }}
