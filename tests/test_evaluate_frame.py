"""Issue 11, item 18: `jetfm evaluate --tokenizer` compares generated jets with the reference
put through the generator's frame (tokenizer cuts, n_max truncation) and says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_jets import random_jets
from test_tokenizer import small_tokenizer

from jetfm.cli import main
from jetfm.data.io import write_jets
from jetfm.metrics.evaluate import RAW_FRAME, evaluate_files


def _row(out_dir, metric: str, observable: str) -> dict:
    payload = json.loads((out_dir / "metrics.table.json").read_text())
    (row,) = [r for r in payload["rows"] if (r["metric"], r["observable"]) == (metric, observable)]
    return {**row, "title": payload["title"]}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """Truth (240 jets of 1-40 particles) and the first 120 tokenized and decoded with a tiny
    tokenizer (n_max = 20): jets as `jetfm sample` writes them, with the tokenizer's cuts."""
    d = tmp_path_factory.mktemp("frame")
    truth = random_jets(240, seed=21)
    tokenizer = small_tokenizer()
    codes, mask, _ = tokenizer.encode(truth[:120])
    paths = {"truth": d / "truth.parquet", "generated": d / "generated.parquet",
             "tokenizer": d / "tokenizer.safetensors"}
    write_jets(truth, paths["truth"])
    write_jets(tokenizer.decode(codes, mask, label=truth.label[:120]), paths["generated"])
    tokenizer.save(paths["tokenizer"])
    return {k: str(v) for k, v in paths.items()}, tokenizer.fingerprint, truth


def test_tokenizer_frame_makes_multiplicities_like_for_like(sampled, tmp_path, capsys):
    paths, fingerprint, truth = sampled
    raw = evaluate_files([paths["truth"]], [paths["generated"]], tmp_path / "raw",
                         n_bootstrap=2, plots=False)
    assert raw.frame == RAW_FRAME and "(raw reference)" in _row(tmp_path / "raw", "W1",
                                                                "n_particles")["title"]
    rc = main(["evaluate", paths["truth"], "--generated", paths["generated"], "--out-dir",
               str(tmp_path / "framed"), "--n-bootstrap", "2", "--no-plots", "--tokenizer",
               paths["tokenizer"]])
    assert rc == 0
    frame = f"reference in the frame of tokenizer {fingerprint}"
    assert f"Reference: {frame}" in capsys.readouterr().out
    assert f"Reference: {frame}." in (tmp_path / "framed" / "report.md").read_text()
    framed = _row(tmp_path / "framed", "W1", "n_particles")
    assert framed["title"].endswith(f"({frame})")
    raw_w1 = next(r.value.value for r in raw.rows if (r.metric, r.observable)
                  == ("W1", "n_particles"))
    # raw truth keeps up to 40 particles, the decoded jets at most 20: W1 is the truncation
    assert raw_w1 > 4.0 and np.mean(np.minimum(truth.n_particles, 20)) < truth.n_particles.mean()
    # in the frame only the sampling of 120 of 240 jets differs: at the floor, far below raw
    assert framed["value"] < raw_w1 / 5
    assert framed["value"] < framed["floor"] + 4 * max(framed["floor_error"], framed["error"])
