"""AudioCaps fetching against a fake yt-dlp (no network here): the real argument lists and
failure handling, with a stand-in executable that behaves like yt-dlp per video id."""

import stat
from pathlib import Path
import sys
import textwrap

import pandas as pd
import pytest
import soundfile as sf

from scenesynth.data.audiocaps import (AudioCapsError, FetchSettings, classify_failure, fetch_audiocaps_audio,
                                       read_audiocaps_csv, yt_dlp_command)

FAKE = textwrap.dedent(f"""\
    #!{sys.executable}
    # Fake yt-dlp: behaviour chosen by the video id's first letters.
    # The call is logged before the slow imports, so a timeout under load still counts the attempt.
    import pathlib, sys, time
    args = sys.argv[1:]
    url = args[args.index("--") + 1]
    vid = url.split("v=")[1]
    out = args[args.index("-o") + 1].replace("%(ext)s", "flac")
    log = pathlib.Path(out).parent / "calls.log"
    with open(log, "a") as f:
        f.write(vid + " " + " ".join(args[args.index("--download-sections") + 1:][:1]) + "\\n")
    if vid.startswith("priv"):
        sys.exit(print("ERROR: [youtube] " + vid + ": Private video. Sign in", file=sys.stderr) or 1)
    if vid.startswith("gone"):
        sys.exit(print("ERROR: [youtube] " + vid + ": Video unavailable", file=sys.stderr) or 1)
    if vid.startswith("slow"):
        time.sleep(8)
    if vid.startswith("flky"):
        marker = pathlib.Path(out).parent / (vid + ".seen")
        if not marker.exists():
            marker.touch()
            sys.exit(print("ERROR: HTTP Error 429: Too Many Requests", file=sys.stderr) or 1)
    import numpy as np, soundfile as sf
    sf.write(out, np.zeros(44100 * 10, dtype=np.float32), 44100, format="FLAC")
""")


@pytest.fixture()
def fake_ytdlp(tmp_path):
    path = tmp_path / "bin" / "yt-dlp"
    path.parent.mkdir()
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def table(ids):
    return pd.DataFrame({"audiocap_id": range(len(ids)), "youtube_id": ids, "start_time": [30] * len(ids),
                         "caption": ["a dog barks; rm -rf /"] * len(ids)})


def test_command_is_an_argument_list_with_the_segment():
    cmd = yt_dlp_command("abcdefghijk", 30, Path("/x/abcdefghijk"), cookies="c.txt", rate_limit="1M")
    assert cmd[-2:] == ["--", "https://www.youtube.com/watch?v=abcdefghijk"]
    assert cmd[cmd.index("--download-sections") + 1] == "*30.000-40.000"
    assert cmd[cmd.index("--cookies") + 1] == "c.txt" and cmd[cmd.index("--limit-rate") + 1] == "1M"
    with pytest.raises(AudioCapsError, match="invalid YouTube id"):
        yt_dlp_command("abc;rm -rf ", 0, Path("/x"))


def test_read_csv_validates(tmp_path):
    good = tmp_path / "train.csv"
    table(["abcdefghijk"]).to_csv(good, index=False)
    assert read_audiocaps_csv(good)["youtube_id"].tolist() == ["abcdefghijk"]
    bad = tmp_path / "bad.csv"
    table(["abcdefghijk", "$(reboot)xx"]).to_csv(bad, index=False)
    with pytest.raises(AudioCapsError, match=r"bad\.csv: row 3: invalid YouTube id"):
        read_audiocaps_csv(bad)
    table(["abcdefghijk"]).drop(columns="caption").to_csv(bad, index=False)
    with pytest.raises(AudioCapsError, match="missing columns"):
        read_audiocaps_csv(bad)


@pytest.mark.parametrize("message,reason", [
    ("ERROR: [youtube] x: Private video", "private"), ("ERROR: Video unavailable", "unavailable"),
    ("HTTP Error 429: Too Many Requests", "rate_limited"), ("something odd", "error")])
def test_failure_reasons(message, reason):
    assert classify_failure(message) == reason


def test_fetch_records_failures_retries_transients_and_reports_coverage(tmp_path, fake_ytdlp):
    ids = ["okokokokok1", "okokokokok2", "privateAAAA", "goneBBBBBBB", "flkyCCCCCCC", "slowDDDDDDD"]
    settings = FetchSettings(executable=fake_ytdlp, timeout=3.0, retries=1, backoff=0.01)
    out = tmp_path / "audio"
    coverage = fetch_audiocaps_audio(table(ids), out, workers=3, settings=settings)
    assert (coverage["listed"], coverage["downloaded"]) == (6, 3)
    failed = pd.read_csv(out / "failed.csv")
    assert dict(zip(failed["youtube_id"], failed["reason"])) == {
        "privateAAAA": "private", "goneBBBBBBB": "unavailable", "slowDDDDDDD": "timeout"}
    assert sf.info(out / "okokokokok1.flac").duration == pytest.approx(10.0)
    assert not list(out.glob(".*"))  # no partial files left
    calls = (out / "calls.log").read_text().split("\n")
    assert sum(c.startswith("privateAAAA") for c in calls) == 1  # permanent: not retried
    assert sum(c.startswith("slowDDDDDDD") for c in calls) == 2  # transient: retried once

    # A rerun skips what is present and what is known to be gone ...
    again = fetch_audiocaps_audio(table(ids), out, workers=2, settings=settings)
    assert again["attempted_this_run"] == 0 and again["downloaded"] == 3
    # ... unless asked to retry the failures.
    retried = fetch_audiocaps_audio(table(ids), out, workers=2, settings=settings, retry_failed=True)
    assert retried["attempted_this_run"] == 3 and retried["failed"] == 3


def test_missing_yt_dlp_is_a_clear_error(tmp_path):
    settings = FetchSettings(executable=str(tmp_path / "no-such-yt-dlp"), retries=0)
    with pytest.raises(RuntimeError, match="install yt-dlp and ffmpeg"):
        fetch_audiocaps_audio(table(["okokokokok1"]), tmp_path / "a", settings=settings)
