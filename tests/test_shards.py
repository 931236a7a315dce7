"""Shards (jetfm.data.shards): N deterministic parts of generate / tokenize / cluster whose
outputs, concatenated in index order, are exactly one unsharded run; run here, per batch-array
element (--shard I) or as Dask tasks; merged into the unsharded file and cuts report.

The reference of ``generate`` is the one-process run with ``workers = N`` (the pool of
:func:`jetfm.data.pythia.generate`), not the shard code; the Dask run uses an in-process
``LocalCluster`` (threads: spawning worker processes that import Pythia takes ~20 s here).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import pyhepmc
import pytest
from cli_models import tiny_tokenizer
from io_jets import random_jets

from jetfm.cli import main
from jetfm.data import SelectionReport
from jetfm.data.io import read_jets, write_jets
from jetfm.data.pythia import GeneratorConfig, generate, worker_seeds
from jetfm.data.shards import (
    GenerateJob,
    ShardOptions,
    merge_reports,
    run_shards,
    shard_path,
    shard_range,
)
from jetfm.data.summary import read_sidecar
from jetfm.data.tokens import read_tokens
from jetfm.models.tokenizer import Tokenizer

N_JETS = 5  # total jets: shards of 2 and 3 (sizes differ by one)
N_SHARDS = 2
SEED = 11
CONFIG = GeneratorConfig("w", events_per_batch=40)


def _assert_same_jets(a, b) -> None:
    assert len(a) == len(b)
    assert ak.array_equal(a.particles, b.particles)
    np.testing.assert_array_equal(a.label, b.label)
    assert set(a.extra) == set(b.extra)
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key], b.extra[key])


def _report_tuples(reports: list[SelectionReport]) -> list[tuple]:
    return [(r.name, r.n_before, r.n_after, r.removed) for r in reports]


# ---------------------------------------------------------------------- index arithmetic
def test_shard_ranges_tile_the_items_like_the_worker_split():
    for n, n_shards in [(5, 2), (16, 16), (1000, 7), (3, 1)]:
        ranges = [shard_range(n, i, n_shards) for i in range(n_shards)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        sizes = [hi - lo for lo, hi in ranges]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
        # pythia.generate gives worker k the jets k*n//w ... (k+1)*n//w
        assert sizes == [(k + 1) * n // n_shards - k * n // n_shards for k in range(n_shards)]


def test_shard_file_names_carry_the_index():
    assert shard_path("data/top.root", 3, 16) == Path("data/top.shard-003-of-016.root")
    assert shard_path("tok.parquet", 0, 2).name == "tok.shard-000-of-002.parquet"
    assert shard_path("x.h5", 12, 1000).name == "x.shard-0012-of-1000.h5"


@pytest.mark.parametrize(("index", "n_shards", "message"), [
    (4, 4, "outside 0 ... 3"), (-1, 4, "outside 0 ... 3"), (0, 0, "n_shards must be"),
    (True, 2, "outside"),
])
def test_bad_shard_values_raise(index, n_shards, message):
    with pytest.raises(ValueError, match=message):
        shard_range(10, index, n_shards)
    with pytest.raises(ValueError, match=message):
        ShardOptions(n_shards=n_shards, shard=index)


def test_more_shards_than_items_is_refused():
    with pytest.raises(ValueError, match="3 jets cannot make 4 shards"):
        GenerateJob(CONFIG, 3, Path("top.root"), n_shards=4)


def test_shard_seeds_differ_and_are_the_one_run_workers():
    job = GenerateJob(CONFIG, 1000, Path("w.root"), n_shards=4, seed=SEED, workers=3)
    assert job.total_workers == 12
    streams = [job.streams(i) for i in range(4)]
    assert [list(s) for s in streams] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    seeds = [worker_seeds(SEED, "w", k)[0] for s in streams for k in s]
    assert len(set(seeds)) == 12  # every worker stream of every shard has its own seed
    # more workers than a shard has jets: fewer streams per shard, the same for all shards
    assert GenerateJob(CONFIG, 10, Path("w.root"), n_shards=4, workers=8).workers_per_shard == 2


# ---------------------------------------------------------------------- merged reports
def test_merge_reports_adds_counts_and_keeps_order():
    a = [SelectionReport("t: jets from 10 events", 30, 5, {"low": 20, "eta": 5}),
         SelectionReport("truncation", 5, 5, {"beyond": 0})]
    b = [SelectionReport("t: jets from 7 events", 20, 4, {"low": 10, "eta": 6}),
         SelectionReport("jets with a particle", 4, 3, {"empty": 1}),
         SelectionReport("truncation", 4, 3, {"beyond": 1})]
    merged = merge_reports([a, b])
    assert _report_tuples(merged) == [
        ("t: jets from 17 events", 50, 9, {"low": 30, "eta": 11}),
        ("jets with a particle", 4, 3, {"empty": 1}),
        ("truncation", 9, 8, {"beyond": 1}),
    ]
    # reports of different selections (one per input file) are listed in shard order
    per_file = [[SelectionReport(f"f{i}: {what}", 3, 2, {"cut": 1}) for what in ("ev", "jets")]
                for i in range(3)]
    assert [r.name for r in merge_reports(per_file)] == [
        "f0: ev", "f0: jets", "f1: ev", "f1: jets", "f2: ev", "f2: jets"]
    # cluster shards report on their own files: joined, even when two files share a name
    same_name = [[SelectionReport("hepmc:ev.hepmc: events", 3, 3, {})] for _ in range(2)]
    assert len(merge_reports(same_name, add=False)) == 2
    assert _report_tuples(merge_reports(same_name)) == [("hepmc:ev.hepmc: events", 6, 6, {})]
    with pytest.raises(ValueError, match="different reasons"):
        merge_reports([a, [SelectionReport("truncation", 1, 1, {"other": 0})]])


# ---------------------------------------------------------------------- generate
@pytest.fixture(scope="module")
def one_run():
    """The unsharded reference: one generate() call with N_SHARDS worker processes."""
    return generate(CONFIG, N_JETS, seed=SEED, workers=N_SHARDS, progress=False)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Every shard run by itself (as array elements would), then merged."""
    job = GenerateJob(CONFIG, N_JETS, tmp_path_factory.mktemp("gen") / "w.parquet",
                      n_shards=N_SHARDS, seed=SEED)
    results = [job.run(i) for i in range(N_SHARDS)]
    merged = job.merge()
    return job, results, merged


def test_shards_concatenated_equal_the_unsharded_run(one_run, sharded):
    job, results, merged = sharded
    reference, reference_reports = one_run
    assert [r.path.name for r in results] == ["w.shard-000-of-002.parquet",
                                              "w.shard-001-of-002.parquet"]
    assert [r.n_jets for r in results] == [2, 3]
    parts = [read_jets([str(r.path)]) for r in results]
    assert not ak.array_equal(parts[0].particles[:1], parts[1].particles[:1])
    _assert_same_jets(read_jets([str(r.path) for r in results]), reference)
    # the merged file is the unsharded file; its report counts as the one run's
    _assert_same_jets(read_jets([str(merged.path)]), reference)
    assert merged.path == job.out and merged.n_jets == N_JETS
    reports, record = read_sidecar(merged.path)
    assert _report_tuples(reports) == _report_tuples(reference_reports)
    assert "from" in reports[0].name and record["workers"] == N_SHARDS
    # each shard has its own report, counting only its events and jets
    shard_reports = [read_sidecar(r.path)[0][0] for r in results]
    assert [r.n_after for r in shard_reports] == [2, 3]
    assert sum(r.n_before for r in shard_reports) == reference_reports[0].n_before
    assert read_sidecar(results[1].path)[1]["shard"] == {"index": 1, "n_shards": 2,
                                                         "jets": [2, 5], "workers": [1, 2]}


def test_finished_shards_are_reused_and_merge_checks_the_options(sharded):
    job, _, _ = sharded
    again = job.run(0)
    assert again.reused and again.n_jets == 2
    with pytest.raises(ValueError, match=r"made with other options.*'seed'"):
        replace(job, seed=SEED + 1).merge()
    with pytest.raises(FileNotFoundError, match="3 of 3 shards are not finished"):
        replace(job, n_shards=3).merge()


@pytest.fixture(scope="module")
def dask_scheduler():
    """An in-process Dask cluster of two single-threaded workers; its scheduler address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_dask_backend_gives_the_sharded_jets(sharded, dask_scheduler, tmp_path):
    job, results, _ = sharded
    on_dask = run_shards([replace(job, out=tmp_path / "w.parquet")], range(N_SHARDS),
                         dask_scheduler)
    assert [r.path.name for r in on_dask] == [r.path.name for r in results]
    for mine, theirs in zip(on_dask, results, strict=True):
        assert mine.path.parent == tmp_path and not mine.reused
        _assert_same_jets(read_jets([str(mine.path)]), read_jets([str(theirs.path)]))
        assert _report_tuples(mine.reports) == _report_tuples(theirs.reports)


def test_bad_shard_options_are_one_line_errors(tmp_path, capsys):
    base = ["generate", "--process", "w", "--n-jets", "4", "--out-dir", str(tmp_path)]
    cases = [
        (["--n-shards", "4", "--shard", "4"], "shard index 4 is outside 0 ... 3"),
        (["--n-shards", "4", "--shard", "-1"], "--shard: '-1' must be >= 0"),
        (["--n-shards", "0"], "--n-shards: '0' must be >= 1"),
        (["--n-shards", "5"], "4 jets cannot make 5 shards"),
        (["--n-shards", "2", "--shard", "0", "--dask"], "give one of the two"),
        (["--n-shards", "2", "--merge"], "2 of 2 shards are not finished"),
        (["--merge"], "--merge needs --n-shards N > 1"),
        (["--shard", "0"], "--shard I needs --n-shards N > 1"),
        (["--n-shards", "2", "--dask", "--workers", "2"], "raise --n-shards instead"),
    ]
    for options, message in cases:
        assert main(base + options) == 2, options
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (options, err)
    assert not list(tmp_path.iterdir())  # nothing was written


# ---------------------------------------------------------------------- tokenize
def test_tokenize_shards_equal_one_run(tmp_path, capsys):
    tiny_tokenizer(tmp_path / "tokenizer.safetensors")
    files = []
    for i, n in enumerate((7, 4, 9)):
        path = tmp_path / f"jets{i}.parquet"
        write_jets(random_jets(n, seed=i, n_max=15), path)
        files.append(str(path))
    common = ["tokenize", *files, "--tokenizer", str(tmp_path / "tokenizer.safetensors")]
    assert main([*common, "--out", str(tmp_path / "one.parquet")]) == 0
    for i in range(2):  # two array elements
        assert main([*common, "--out", str(tmp_path / "tok.parquet"), "--n-shards", "2",
                     "--shard", str(i)]) == 0
    assert main([*common, "--out", str(tmp_path / "tok.parquet"), "--n-shards", "2",
                 "--merge"]) == 0
    printed = capsys.readouterr().out
    assert "tok.parquet 2 shards merged: 20 jets" in printed
    n_max = 12
    one = read_tokens(tmp_path / "one.parquet", n_max)
    shards = [read_tokens(tmp_path / f"tok.shard-00{i}-of-002.parquet", n_max) for i in range(2)]
    assert [len(s) for s in shards] == [7, 13]  # files [0] and [1, 2]
    merged = read_tokens(tmp_path / "tok.parquet", n_max)
    for got in (merged, shards):
        codes = got.codes if not isinstance(got, list) else np.concatenate([s.codes for s in got])
        mask = got.mask if not isinstance(got, list) else np.concatenate([s.mask for s in got])
        np.testing.assert_array_equal(codes, one.codes)
        np.testing.assert_array_equal(mask, one.mask)
    np.testing.assert_array_equal(merged.label, one.label)
    assert merged.tokenizer == one.tokenizer
    reports, record = read_sidecar(tmp_path / "tok.parquet")
    assert record["files"] == files
    tokenizer = Tokenizer.load(tmp_path / "tokenizer.safetensors")
    _, _, one_reports = tokenizer.encode(read_jets(files))  # what the one run printed
    assert _report_tuples(reports) == _report_tuples(one_reports)
    assert reports[1].name == "truncation to 12" and reports[1].n_after == one.mask.sum()


# ---------------------------------------------------------------------- cluster
def _hepmc_file(path: Path, seed: int, n_events: int = 3) -> Path:
    """Events of two back-to-back sprays of 8 massless pions (~100-300 GeV each)."""
    rng = np.random.default_rng(seed)
    with pyhepmc.open(path, "w") as f:
        for number in range(n_events):
            event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
            event.event_number = 100 * seed + number
            beams = [pyhepmc.GenParticle((0.0, 0.0, pz, 6500.0), 2212, 4)
                     for pz in (6500.0, -6500.0)]
            eta0, phi0 = rng.uniform(-1.5, 1.5), rng.uniform(-np.pi, np.pi)
            outs = []
            for sign in (1, -1):
                pt = rng.uniform(10, 40, 8)
                eta = sign * eta0 + rng.normal(0, 0.1, 8)
                phi = phi0 + (0 if sign > 0 else np.pi) + rng.normal(0, 0.1, 8)
                for p, e_, f_ in zip(pt, eta, phi, strict=True):
                    px, py, pz = p * np.cos(f_), p * np.sin(f_), p * np.sinh(e_)
                    outs.append(pyhepmc.GenParticle((px, py, pz, p * np.cosh(e_)), 211, 1))
            for particle in beams + outs:
                event.add_particle(particle)
            vertex = pyhepmc.GenVertex()
            for beam in beams:
                vertex.add_particle_in(beam)
            event.add_vertex(vertex)
            for particle in outs:
                vertex.add_particle_out(particle)
            f.write(event)
    return path


CLUSTER_CUTS = ["--jet-r", "0.4", "--pt-min", "20", "--pt-max", "5000"]


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory):
    """Three HepMC files clustered in one run, and in three shards (here) then merged."""
    folder = tmp_path_factory.mktemp("cluster")
    files = [str(_hepmc_file(folder / f"ev{i}.hepmc", seed=i + 1)) for i in range(3)]
    one, out = folder / "one.parquet", folder / "jets.parquet"
    assert main(["cluster", *files, "--out", str(one), *CLUSTER_CUTS]) == 0
    sharded = ["cluster", *files, "--out", str(out), *CLUSTER_CUTS, "--n-shards", "3"]
    assert main(sharded) == 0
    assert main([*sharded, "--merge"]) == 0
    return files, one, out, [shard_path(out, i, 3) for i in range(3)]


def test_cluster_shards_over_files_equal_one_run(cluster_runs, capsys):
    files, one_path, out, shard_files = cluster_runs
    assert main(["cluster", *files, "--out", str(out), "--n-shards", "4"]) == 2
    assert "3 input files cannot make 4 shards" in capsys.readouterr().err
    one = read_jets([str(one_path)])
    assert len(one) == 18  # two jets per event
    _assert_same_jets(read_jets([str(p) for p in shard_files]), one)
    _assert_same_jets(read_jets([str(out)]), one)
    one_reports, one_record = read_sidecar(one_path)
    reports, record = read_sidecar(out)
    assert _report_tuples(reports) == _report_tuples(one_reports)  # per file, in file order
    assert record["source"] == one_record["source"] == files
    shard_record = read_sidecar(shard_files[2])[1]
    assert shard_record["source"] == [files[2]] and shard_record["shard"]["files"] == [2, 3]


def test_cluster_command_on_dask_writes_the_same_shards(cluster_runs, dask_scheduler, tmp_path,
                                                        capsys):
    files, _, _, shard_files = cluster_runs
    on_dask = tmp_path / "jets.parquet"
    assert main(["cluster", *files, "--out", str(on_dask), *CLUSTER_CUTS, "--n-shards", "3",
                 "--dask-scheduler", dask_scheduler]) == 0
    assert "jets.parquet shard-002-of-003: 6 jets" in capsys.readouterr().out
    for path in shard_files:
        _assert_same_jets(read_jets([str(tmp_path / path.name)]), read_jets([str(path)]))
        assert read_sidecar(tmp_path / path.name)[0] == read_sidecar(path)[0]
