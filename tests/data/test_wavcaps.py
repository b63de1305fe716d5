import json

import pandas as pd
import pytest

from scenesynth.data.wavcaps import (WavCapsError, apply_blacklist, merge_sources, read_blacklist,
                                     read_wavcaps_captions)


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_captions_in_both_json_layouts(tmp_path):
    entries = [{"id": "Yabcdefghijk.wav", "caption": " A dog barks. ", "duration": 10.0},
               {"id": "Y-_abcdefghi.wav", "caption": "Rain."}]
    for data in (entries, {"num_captions_per_audio": 1, "data": entries}):
        table = read_wavcaps_captions(write(tmp_path / "as_final.json", data))
        assert table["youtube_id"].tolist() == ["abcdefghijk", "-_abcdefghi"]
        assert table["caption"].tolist() == ["A dog barks.", "Rain."] and table["duration"].tolist() == [10.0, 10.0]


def test_malformed_entries_name_the_file(tmp_path):
    with pytest.raises(WavCapsError, match=r"as_final\.json entry 1.*not an AudioSet_SL id"):
        read_wavcaps_captions(write(tmp_path / "as_final.json", [
            {"id": "Yabcdefghijk.wav", "caption": "x"}, {"id": "../../etc/passwd", "caption": "y"}]))
    with pytest.raises(WavCapsError, match="entry 0 lacks"):
        read_wavcaps_captions(write(tmp_path / "b.json", [{"id": "Yabcdefghijk.wav"}]))


def test_blacklist_drops_evaluation_clips(tmp_path):
    blocked = read_blacklist([write(tmp_path / "bl.json", {"AudioSet": ["Yabcdefghijk.wav"], "FreeSound": ["1"]})])
    assert blocked == {"abcdefghijk"}
    table = pd.DataFrame({"youtube_id": ["abcdefghijk", "zzzzzzzzzzz"], "caption": ["a", "b"]})
    kept, dropped = apply_blacklist(table, blocked)
    assert kept["youtube_id"].tolist() == ["zzzzzzzzzzz"] and dropped == 1


def test_merge_keeps_one_row_per_video_preferring_audiocaps_with_all_its_captions():
    ac = pd.DataFrame({"audiocap_id": [2, 1, 3], "youtube_id": ["aaaaaaaaaaa", "aaaaaaaaaaa", "bbbbbbbbbbb"],
                       "caption": ["second", "first", "b"], "start_time": [0, 0, 30]})
    wc = pd.DataFrame({"youtube_id": ["bbbbbbbbbbb", "ccccccccccc"], "caption": ["wc b", "wc c"], "duration": 10.0})
    merged, counts = merge_sources(ac, wc)
    assert merged["youtube_id"].tolist() == ["aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"]
    assert merged["caption"].tolist() == ["first", "b", "wc c"]
    assert merged["captions"].tolist()[:2] == [["first", "second"], ["b"]]  # wavcaps rows get [caption] on write
    assert merged["source"].tolist() == ["audiocaps", "audiocaps", "wavcaps"]
    assert counts == {"audiocaps": 2, "wavcaps": 2, "duplicates_dropped": 1, "total": 3}
