"""Streaming (jetfm.data.streaming): every jet once per epoch over processes x workers, seeded
orders, the shuffle buffer, the in-memory preprocessing, bad files, training and DDP."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import uproot
from sklearn.metrics import roc_auc_score
from stream_jobs import IdModel, n_particles, tiny_config, write_files

from jetfm.data import JetDataError, read_jets
from jetfm.data.parquet import write_parquet
from jetfm.data.streaming import JetStream, TaggerInputs, TokenSequences, resume_epoch
from jetfm.data.tokens import TokenDataset, read_tokens, write_tokens
from jetfm.tasks.tagging import prepared
from jetfm.tasks.tagging_stream import train_tagger_stream
from jetfm.tasks.training import TrainConfig, fit

SIZES = [23, 31, 18]  # 72 jets: a multiple of 1, 2 and 4 shards
ODD = [23, 31, 17]  # 71 jets


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    even, even_jets = write_files(folder, SIZES, stem="even")
    odd, odd_jets = write_files(folder, ODD, seed=5, stem="odd")
    return {"even": (even, even_jets), "odd": (odd, odd_jets)}


def epoch_ids(stream, rank, world, workers, epoch=0):
    """The (file, entry) ids each rank gets in ``epoch`` (one list of batches per rank),
    through a real DataLoader with ``workers`` workers; checks the rows' values."""
    per_rank = []
    for r in range(world):
        ranked = copy.copy(stream)  # what each process builds, rank and world size given
        ranked.rank, ranked.world_size, ranked.with_ids = r, world, True
        loader = ranked.loader(num_workers=workers)
        loader.sampler.set_epoch(epoch)  # what Lightning calls
        batches = list(loader)
        assert len(batches) == len(loader)  # len(stream): this process's batches per epoch
        per_rank.append(batches)
    return per_rank


def flat_ids(batches):
    return [(int(f), int(e)) for b in batches for f, e in zip(b["file"], b["entry"], strict=True)]


def check_values(batches, jets):
    """Every row's value is that of the jet its id names."""
    for b in batches:
        for f, e, n in zip(b["file"], b["entry"], b["n"], strict=True):
            assert int(n) == int(jets[int(f)].n_particles[int(e)])


@pytest.mark.parametrize(("world", "workers"), [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_every_jet_exactly_once_per_epoch(files, world, workers):
    paths, jets = files["even"]
    stream = JetStream(paths, n_particles, batch_size=5, chunk_size=12, buffer_size=10)
    every = {(f, e) for f, n in enumerate(SIZES) for e in range(n)}
    for epoch in (0, 1):
        per_rank = epoch_ids(stream, 0, world, workers, epoch)
        ids = [i for batches in per_rank for i in flat_ids(batches)]
        assert len(ids) == len(every) and set(ids) == every  # none missing, none repeated
        assert len({len(batches) for batches in per_rank}) == 1  # equal steps per process
        for batches in per_rank:
            check_values(batches, jets)


def test_uneven_totals_are_padded_or_dropped_and_counted(files, caplog):
    """71 jets over 2 processes x 2 workers: 'pad' repeats 4 * 18 - 71 = 1 jet, 'drop'
    leaves out 71 - 4 * 17 = 3; the processes take equal steps; the count is logged. One
    process: no change, every jet once."""
    paths, jets = files["odd"]
    every = {(f, e) for f, n in enumerate(ODD) for e in range(n)}
    for uneven, extra, what in (("pad", 1, "repeated"), ("drop", -3, "left out")):
        stream = JetStream(paths, n_particles, batch_size=4, chunk_size=12, uneven=uneven)
        per_rank = epoch_ids(stream, 0, 2, 2)
        counts = Counter(i for batches in per_rank for i in flat_ids(batches))
        assert sum(counts.values()) == 71 + extra
        assert len({len(batches) for batches in per_rank}) == 1
        assert len({sum(len(b["n"]) for b in batches) for batches in per_rank}) == 1
        if uneven == "pad":
            assert set(counts) == every and sorted(counts.values())[-2:] == [1, 2]
        else:
            assert set(counts) < every and max(counts.values()) == 1
        for batches in per_rank:
            check_values(batches, jets)
        # the rank-0 process logs the count (in this process: no workers, 2 shards)
        rank0 = JetStream(paths, n_particles, chunk_size=12, uneven=uneven, rank=0,
                          world_size=2)
        with caplog.at_level(logging.WARNING, logger="jetfm.data.streaming"):
            caplog.clear()
            next(iter(rank0))
        assert f"71 jets for 2 shards (2 processes x 1 workers): 1 jets {what}" in caplog.text
    single = JetStream(paths, n_particles, batch_size=4, chunk_size=12)
    ids = flat_ids([b for batches in epoch_ids(single, 0, 1, 2) for b in batches])
    assert len(ids) == 71 and set(ids) == every


def test_orders_follow_the_seed_and_the_epoch(files):
    paths, _ = files["even"]

    def order(seed, epoch, **kw):
        stream = JetStream(paths, n_particles, batch_size=8, chunk_size=12, buffer_size=8,
                           seed=seed, **kw)
        return flat_ids(epoch_ids(stream, 0, 1, 1, epoch)[0])

    first = order(3, 0)
    assert order(3, 0) == first  # same seed, same epoch: same order
    assert order(3, 1) != first and sorted(order(3, 1)) == sorted(first)  # next epoch: new
    assert order(4, 0) != first
    assert order(3, 5, shuffle=False) == sorted(first)  # no shuffle: file order


def test_shuffle_buffer_permutes_without_changing_the_multiset(files):
    paths, jets = files["even"]
    rows = {}
    for size in (0, 10, 1000):  # none, smaller and larger than the data
        stream = JetStream(paths, n_particles, batch_size=6, chunk_size=12, buffer_size=size,
                           seed=2)
        batches = epoch_ids(stream, 0, 1, 1)[0]
        check_values(batches, jets)
        rows[size] = flat_ids(batches)
        assert all(len(b["n"]) == 6 for b in batches)  # 72 = 12 x 6: full batches only
    assert all(sorted(r) == sorted(rows[0]) and len(r) == 72 for r in rows.values())
    assert rows[10] != rows[0] and rows[1000] != rows[0]
    # without buffer the chunks (12 jets) come whole; a buffer of 10 mixes neighbours
    def runs(ids):
        return sum(1 for a, b in zip(ids[:-1], ids[1:], strict=True) if b != (a[0], a[1] + 1))

    assert runs(rows[10]) > runs(rows[0])


def test_stream_gives_the_in_memory_inputs_of_the_tagger(files):
    """Chunk-wise TaggerInputs == the in-memory path (tagging.prepared) for every jet: same
    features, four-momenta, mask and label, float32."""
    paths, _ = files["odd"]
    tagger = tiny_config().build()
    memory = prepared(tagger, read_jets(paths), "all")
    offsets = np.concatenate([[0], np.cumsum(ODD)])
    stream = JetStream(paths, TaggerInputs(tagger), batch_size=16, chunk_size=16,
                       buffer_size=20, with_ids=True)
    n = 0
    for batch in stream.loader():
        row = offsets[batch["file"].numpy()] + batch["entry"].numpy()
        for key, value in memory.inputs.items().items():
            assert batch[key].dtype == value.dtype
            torch.testing.assert_close(batch[key], value[row], rtol=0, atol=0)
        assert torch.equal(batch["label"], memory.labels[row])
        n += len(row)
    assert n == 71


def test_token_stream_gives_the_generative_sequences(tmp_path):
    """Token files (two row groups) stream the [start, codes + 1, stop] sequences
    fit_generative builds from read_tokens."""
    from jetfm.data.transforms import omnijet_preprocessing
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.models.vqvae import VQVAE, VQVAEConfig

    tokenizer = Tokenizer(VQVAE(VQVAEConfig(dim=8, n_blocks=1, n_heads=2, codebook_size=16)),
                          omnijet_preprocessing(n_max=10))
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 11, 40)
    mask = np.arange(10)[None, :] < counts[:, None]
    codes = np.where(mask, rng.integers(0, 16, (40, 10)), 0)
    record = {"fingerprint": tokenizer.fingerprint, "codebook_size": 16}
    path = write_tokens(tmp_path / "t.parquet", TokenDataset(codes, mask, np.zeros(40), record))
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=25)  # two row groups: 25 + 15
    full = read_tokens(path, 10, tokenizer.fingerprint)
    seq, seq_mask = tokenizer.to_sequences(full.codes, full.mask)
    stream = JetStream([path], TokenSequences(tokenizer), batch_size=7, buffer_size=9,
                       n_max=tokenizer.n_max, fingerprint=tokenizer.fingerprint, with_ids=True)
    assert len(stream.chunks) == 2
    got = {}
    for tokens, tmask, _, entry in stream.loader():
        for t, m, e in zip(tokens, tmask, entry, strict=True):
            got[int(e)] = (t.numpy(), m.numpy())
    assert sorted(got) == list(range(40))
    for e, (t, m) in got.items():
        np.testing.assert_array_equal(t, seq[e])
        np.testing.assert_array_equal(m, seq_mask[e])
    with pytest.raises(JetDataError, match="made by tokenizer"):
        JetStream([path], TokenSequences(tokenizer), n_max=10, fingerprint="other")


def test_bad_files_fail_at_construction_naming_file_and_key(tmp_path, files):
    good = files["even"][0][0]
    with pytest.raises(JetDataError, match="missing.root: no such file"):
        JetStream([good, tmp_path / "missing.root"], n_particles)
    (tmp_path / "jets.txt").write_text("x")
    with pytest.raises(JetDataError, match="jets.txt: unknown file type"):
        JetStream([tmp_path / "jets.txt"], n_particles)
    with uproot.recreate(tmp_path / "nopx.root") as f:
        f.mktree("tree", {"part_py": "var * float32"}).extend(
            {"part_py": ak.Array([[1.0, 2.0], [3.0]])})
    with pytest.raises(JetDataError, match=r"nopx.root: missing four-momentum branches \['part_px"):
        JetStream([tmp_path / "nopx.root"], n_particles)
    with uproot.recreate(tmp_path / "notree.root") as f:
        f.mktree("other", {"x": np.float64}).extend({"x": np.zeros(2)})
    with pytest.raises(JetDataError, match="notree.root: no TTree 'tree'"):
        JetStream([tmp_path / "notree.root"], n_particles)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["PFCands"] = np.zeros((2, 3, 4))
    with pytest.raises(JetDataError, match=r"bad.h5: dataset 'PFCands' has shape \(2, 3, 4\)"):
        JetStream([tmp_path / "bad.h5"], n_particles)
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "plain.parquet")
    with pytest.raises(JetDataError, match="plain.parquet: no 'jetfm' key"):
        JetStream([tmp_path / "plain.parquet"], n_particles)
    (tmp_path / "damaged.root").write_bytes(b"root" * 10)
    with pytest.raises(JetDataError, match="damaged.root: not a readable ROOT file"):
        JetStream([tmp_path / "damaged.root"], n_particles)
    record = {"fingerprint": "f", "codebook_size": 4}
    tokens = write_tokens(tmp_path / "tok.parquet", TokenDataset(
        np.zeros((2, 3), np.int64), np.ones((2, 3), bool), np.zeros(2), record))
    with pytest.raises(JetDataError, match="tok.parquet is a token file but other files"):
        JetStream([good, tokens], n_particles)
    with pytest.raises(ValueError, match="token files need n_max"):
        JetStream([tokens], n_particles)
    with pytest.raises(ValueError, match="uneven"):
        JetStream([good], n_particles, uneven="repeat")
    stream = JetStream([good], n_particles, num_workers=2)
    with pytest.raises(ValueError, match="set up for 2 DataLoader workers but runs in 1"):
        next(iter(torch.utils.data.DataLoader(stream, batch_size=None)))


def test_jetclass_aspen_and_parquet_files_stream_together(tmp_path, files):
    """One stream over a ROOT, an AspenOpenJets HDF5 and a Parquet file: every jet once, each
    row the value of the jet its id names (the AOJ reader keeps every particle: <= 150)."""
    from jetfm.data.aspen import write_aspen

    paths, jets = files["even"]
    write_aspen(jets[1], tmp_path / "aoj.h5")
    write_parquet(jets[2], tmp_path / "jets.parquet")
    mixed = [paths[0], tmp_path / "aoj.h5", tmp_path / "jets.parquet"]
    stream = JetStream(mixed, n_particles, batch_size=7, chunk_size=10, buffer_size=5)
    assert [len(c) for c in stream.chunks] == [10, 10, 3, 10, 10, 10, 1, 18]
    per_rank = epoch_ids(stream, 0, 2, 1)
    ids = [i for batches in per_rank for i in flat_ids(batches)]
    assert sorted(ids) == sorted((f, e) for f, n in enumerate(SIZES) for e in range(n))
    for batches in per_rank:
        check_values(batches, jets)


def test_parquet_row_groups_and_invalid_jets(tmp_path, files):
    """A Parquet jet file streams row group by row group; an invalid jet raises naming the
    file and entry, or with skip_invalid is left out and, with 2 processes, made up by a
    repeat so that both take the same steps."""
    jets = files["even"][1][1]  # 31 jets
    bad = jets[:]
    flat = ak.to_numpy(ak.flatten(bad.particles["energy"])).copy()
    flat[int(bad.n_particles[:4].sum())] = -1.0  # jet 4: negative energy
    bad.particles = ak.with_field(bad.particles, ak.unflatten(flat, bad.n_particles), "energy")
    path = tmp_path / "bad.parquet"
    write_parquet(bad, path)
    pq.write_table(pq.read_table(path), path, row_group_size=10)  # 10 + 10 + 10 + 1
    stream = JetStream([path], n_particles, batch_size=4, with_ids=True)
    assert [len(c) for c in stream.chunks] == [10, 10, 10, 1]
    with pytest.raises(JetDataError, match=r"bad.parquet\[rows 0:10\]: 1 jet\(s\) with negative"):
        list(stream)
    skipping = JetStream([path], n_particles, batch_size=4, with_ids=True, skip_invalid=True)
    ids = flat_ids(list(skipping))
    assert sorted(e for _, e in ids) == [e for e in range(31) if e != 4]
    per_rank = epoch_ids(JetStream([path], n_particles, batch_size=4, skip_invalid=True),
                         0, 2, 1)
    counts = [sum(len(b["n"]) for b in batches) for batches in per_rank]
    assert counts == [16, 16]  # 31 -> 16 + 16 (1 pad); jet 4 replaced by a repeat


def test_tagger_trains_from_a_stream(tmp_path, files):
    """train_tagger_stream (the tagging task through fit) learns QCD vs top from ROOT files
    streamed in chunks and writes its tagger file."""
    train, _ = write_files(tmp_path / "train", [60, 60], seed=11)
    val, _ = write_files(tmp_path / "val", [40], seed=12)
    config = tiny_config(max_epochs=2, batch_size=16, lr=3e-3, patience=10)
    tagger = train_tagger_stream(train, val, config, tmp_path / "run", chunk_size=64,
                                 buffer_size=32)
    test = read_jets(files["odd"][0])
    auc = roc_auc_score(tagger.labels_of(test), tagger.predict_proba(test)[:, 1])
    assert auc > 0.9 and (tmp_path / "run" / "tagger.safetensors").exists()


def test_a_resumed_run_streams_the_epoch_of_the_uninterrupted_one(tmp_path, files):
    """Resumed after epoch 0 with one DataLoader worker (which starts before Lightning's
    set_epoch), epoch 1 comes in the order of the uninterrupted run; epochs differ."""
    paths = files["even"][0]
    config = TrainConfig(max_epochs=2, batch_size=8, progress=False, accelerator="cpu",
                         num_workers=1)

    def run(out, epochs, resume=None):
        task = IdModel()
        stream = JetStream(paths, n_particles, chunk_size=12, buffer_size=9, with_ids=True)
        val = JetStream(paths[:1], n_particles, shuffle=False, with_ids=True)
        config.max_epochs = epochs
        fit(task, stream, val, config, out, resume=resume)
        return {e: np.concatenate(v) for e, v in task.seen.items()}

    straight = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    assert resume_epoch(last) == 1
    resumed = run(tmp_path / "b", 2, resume=last)
    assert list(resumed) == [1]
    np.testing.assert_array_equal(resumed[1], straight[1])
    assert not np.array_equal(straight[0], straight[1])


def test_ddp_two_processes_see_every_jet_once_per_epoch(tmp_path):
    """Two gloo processes train one tiny tagger for two epochs from a stream: per epoch the
    training ids of both processes together are every jet exactly once, split evenly."""
    train, _ = write_files(tmp_path / "train", [19, 21], seed=3)  # 40 jets
    val, _ = write_files(tmp_path / "val", [12], seed=4)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    job = Path(__file__).parent / "stream_jobs.py"
    result = subprocess.run([sys.executable, str(job), str(out), *map(str, train), "--",
                             *map(str, val)], capture_output=True, text=True, env=env,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    every = {(f, e) for f, n in enumerate([19, 21]) for e in range(n)}
    orders = []
    for epoch in (0, 1):
        parts = [np.load(out / f"ids_rank{r}_epoch{epoch}.npy") for r in (0, 1)]
        assert [len(p) for p in parts] == [20, 20]
        ids = [tuple(map(int, row)) for p in parts for row in p]
        assert len(ids) == 40 and set(ids) == every
        orders.append(ids)
    assert orders[0] != orders[1]


def test_a_class_outside_the_list_names_the_streamed_file(tmp_path, files):
    """Jets keep the file they were first read from as provenance; an error while streaming
    names the file being streamed (a parquet copy here) and its rows, not that origin."""
    paths, _ = files["odd"]
    copy_path = tmp_path / "copy.parquet"
    jets = read_jets(paths[:1])
    write_parquet(jets, copy_path)
    config = dataclasses.replace(tiny_config(), classes=["Tbqq", "Hbb"])  # no QCD
    stream = JetStream([str(copy_path)], TaggerInputs(config.build()), batch_size=8,
                       chunk_size=8)
    with pytest.raises(JetDataError, match=rf"^{copy_path}\[rows \d+:\d+\]: .*do not match"):
        for _ in stream.loader():
            pass
