"""JetClass ROOT reader and writer: exact round trips, provenance, chunking, bad input."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest
import uproot
from io_jets import assert_same_batch, random_jets, with_value

from jetfm.data import JetBatch, JetDataError
from jetfm.data.classes import CLASS_INDEX, JETCLASS_LABEL_BRANCHES
from jetfm.data.jetclass import (
    ALL_PARTICLE_BRANCHES,
    JET_BRANCHES,
    iter_jetclass,
    jetclass_branches,
    read_jetclass,
    write_jetclass,
)
from jetfm.physics.observables import nsubjettiness, softdrop_mass

# 1- and 2-constituent jets included on purpose.
COUNTS = np.array([1, 2, 5, 17, 3, 1, 2, 40, 8, 12, 2, 30])


def _write(path, batch: JetBatch, change=None, tree: str = "tree"):
    """Write ``jetclass_branches(batch)``, optionally edited by ``change``, as a TTree."""
    data = jetclass_branches(batch)
    if change is not None:
        change(data)
    with uproot.recreate(path) as file:
        file.mktree(tree, data)
    return str(path)


@pytest.fixture(scope="module")
def jets() -> JetBatch:
    return random_jets(len(COUNTS), seed=1, counts=COUNTS)


@pytest.fixture(scope="module")
def files(tmp_path_factory, jets) -> list[str]:
    """Three small files of 9, 13 and 17 jets."""
    d = tmp_path_factory.mktemp("jetclass")
    paths = []
    for i, seed in enumerate((2, 3, 4)):
        batch = random_jets(9 + 4 * i, seed=seed, n_max=12)
        paths.append(str(d / f"part{i}.root"))
        write_jetclass(batch, paths[-1])
    return paths


def test_round_trip_exact(tmp_path, jets):
    path = str(tmp_path / "jets.root")
    write_jetclass(jets, path)
    back = read_jetclass(path)
    # Particle fields: the float32 values of the input; pid (extension branch part_pid) exact.
    assert set(back.fields) == set(jets.fields)
    for field in jets.fields:
        assert field in ALL_PARTICLE_BRANCHES.values()
        dtype = np.int64 if field == "pid" else np.float32
        expected = ak.values_astype(jets.particles[field], dtype)
        assert ak.array_equal(back.particles[field], expected, dtype_exact=True), field
    np.testing.assert_array_equal(back.label, jets.label)
    np.testing.assert_array_equal(back.n_particles, COUNTS)
    assert back.source_files == (path,)
    np.testing.assert_array_equal(back.entry, np.arange(len(COUNTS)))
    # Jet-level branches computed by the writer.
    f32 = np.float32
    np.testing.assert_array_equal(back.extra["jet_pt"], jets.jet_pt.astype(f32))
    np.testing.assert_array_equal(back.extra["jet_nparticles"], COUNTS.astype(f32))
    np.testing.assert_array_equal(back.extra["jet_sdmass"], softdrop_mass(jets).astype(f32))
    tau = nsubjettiness(jets, n_max=4).astype(f32)
    for i in range(4):
        np.testing.assert_array_equal(back.extra[f"jet_tau{i + 1}"], tau[:, i])
    # only the observables the writer computed: no invented truth extras
    assert set(back.extra) == {k for k in JET_BRANCHES.values() if k.startswith("jet_")}
    # tau_N = 0 for jets with at most N constituents.
    assert np.all(back.extra["jet_tau2"][COUNTS <= 2] == 0)

    # Read -> write -> read changes nothing, extras and entries included.
    again = str(tmp_path / "again.root")
    write_jetclass(back, again)
    back2 = read_jetclass(again)
    back2.source_files = back.source_files
    assert_same_batch(back2, back)


def test_written_tree_layout(tmp_path, jets):
    path = str(tmp_path / "jets.root")
    write_jetclass(jets, path)
    tree = uproot.open(path)["tree"]
    assert isinstance(tree, uproot.TTree)  # not an RNTuple: weaver reads TTrees
    assert tree["part_px"].count_branch.name == "npart"
    assert tree["part_isMuon"].count_branch.name == "npart"
    np.testing.assert_array_equal(tree["npart"].array(library="np"), COUNTS)
    back = read_jetclass(path)
    deta = tree["part_deta"].array()
    dphi = tree["part_dphi"].array()
    np.testing.assert_allclose(ak.flatten(deta), ak.flatten(back.eta_rel), atol=2e-6)
    np.testing.assert_allclose(ak.flatten(dphi), ak.flatten(back.phi_rel), atol=2e-6)
    # The derived branches sit inside the jet cone of the generated jets.
    assert ak.max(np.hypot(deta, dphi)) < 1.5


def test_p4_only_batch_reads_back_p4_only(tmp_path):
    """Tester defect 3: a p4-only batch came back with charge = is_photon = d0val = 0 and
    truth_match = genpart_pid = 0 extras, none of them in the input."""
    batch = random_jets(4, seed=5)
    batch.particles = batch.particles[["px", "py", "pz", "energy"]]
    path = str(tmp_path / "gen.root")
    write_jetclass(batch, path)
    keys = set(uproot.open(path)["tree"].keys())
    assert {"part_charge", "part_isPhoton", "part_d0val", "part_pid"}.isdisjoint(keys)
    assert not any(k.startswith("aux_") for k in keys)
    back = read_jetclass(path)
    assert back.fields == ("px", "py", "pz", "energy")
    assert set(back.extra) == {k for k in JET_BRANCHES.values() if k.startswith("jet_")}
    np.testing.assert_array_equal(back.label, batch.label)


def test_every_field_and_extra_survives_root(tmp_path):
    """AOJ-like pid/puppi_weight and extras JetClass lacks (top tagging's truth_px, ttv,
    Pythia's truth_max_dr) were dropped; now they read back, in their own dtype."""
    batch = random_jets(6, seed=9)
    weight = ak.values_astype(ak.ones_like(batch.particles["px"]) * 0.75, np.float64)
    batch.particles = ak.with_field(batch.particles, weight, "puppi_weight")
    batch.extra = {"truth_px": np.linspace(1.0, 6.0, 6), "ttv": np.arange(6) % 3,
                   "truth_match": np.ones(6, np.float32)}
    path = str(tmp_path / "all.root")
    write_jetclass(batch, path)
    back = read_jetclass(path)
    assert set(back.fields) == set(batch.fields)
    assert ak.array_equal(back.particles["pid"], batch.particles["pid"], dtype_exact=True)
    assert ak.all(back.particles["puppi_weight"] == 0.75)
    np.testing.assert_array_equal(back.extra["truth_px"], batch.extra["truth_px"])
    np.testing.assert_array_equal(back.extra["ttv"], batch.extra["ttv"])
    assert back.extra["ttv"].dtype == batch.extra["ttv"].dtype
    np.testing.assert_array_equal(back.extra["truth_match"], 1)
    tree = uproot.open(path)["tree"]
    assert {"aux_truth_px", "aux_ttv", "aux_truth_match", "part_puppiWeight"} <= set(tree.keys())
    batch.extra["process"] = np.array(["ttbar"] * 6)  # not a number: refused, not dropped
    with pytest.raises(JetDataError, match=r"str\.root: extra .process. holds <U5.*\.parquet"):
        write_jetclass(batch, tmp_path / "str.root")
    assert not (tmp_path / "str.root").exists()


def test_bool_and_float_labels(tmp_path, jets):
    def as_float(data):
        for b in JETCLASS_LABEL_BRANCHES:
            data[b] = data[b].astype(np.float32)

    floats = _write(tmp_path / "float.root", jets, as_float)
    assert uproot.open(floats)["tree"]["label_QCD"].typename == "float"
    assert uproot.open(_write(tmp_path / "bool.root", jets))["tree"]["label_QCD"].typename == "bool"
    np.testing.assert_array_equal(read_jetclass(floats).label, jets.label)


@pytest.mark.parametrize("n_set", [0, 2])
def test_label_not_one_hot(tmp_path, jets, n_set):
    def spoil(data):
        for b in JETCLASS_LABEL_BRANCHES:
            data[b][3] = False
        data["label_QCD"][3] = data["label_Tbl"][3] = n_set == 2

    batch = jets[:]
    batch.label = np.full(len(jets), CLASS_INDEX["Wqq"])
    path = _write(tmp_path / "bad.root", batch, spoil)
    with pytest.raises(JetDataError, match=rf"bad\.root.*{n_set} of the label_\* branches.*3"):
        read_jetclass(path)


def test_quark_gluon_labels_survive_root_and_unlabelled_refused(tmp_path, jets):
    """Tester defect 3: QCD_quark jets were written as label_QCD and read back as QCD."""
    batch = jets[:4]
    names = ("QCD_quark", "QCD_gluon", "Hbb", "QCD")
    batch.label = np.array([CLASS_INDEX[c] for c in names])
    path = str(tmp_path / "qg.root")
    write_jetclass(batch, path)
    np.testing.assert_array_equal(read_jetclass(path).label, batch.label)
    tree = uproot.open(path)["tree"]  # JetClass tools (weaver) see one-hot label_QCD
    np.testing.assert_array_equal(tree["label_QCD"].array(library="np"), [1, 1, 0, 1])
    np.testing.assert_array_equal(tree["label_QCD_quark"].array(library="np"), [1, 0, 0, 0])

    def spoil(data):  # a split branch set on a Hbb jet contradicts label_QCD
        data["label_QCD_gluon"][2] = True

    with pytest.raises(JetDataError, match=r"bad\.root: 1 jet\(s\) with label_QCD_gluon set.*"
                                           r"entry 2"):
        read_jetclass(_write(tmp_path / "bad.root", batch, spoil))
    batch.label = np.array([-1, 0, 0, 0])
    with pytest.raises(JetDataError, match="unlabelled"):
        write_jetclass(batch, path)


def test_iterate_matches_read(files):
    whole = read_jetclass(files)
    assert whole.source_files == tuple(files)
    np.testing.assert_array_equal(np.bincount(whole.source), [9, 13, 17])
    chunks = list(iter_jetclass(files, step_size=5))
    assert all(len(np.unique(c.source)) == 1 and len(c) <= 5 for c in chunks)
    assert_same_batch(JetBatch.concatenate(chunks), whole)
    for i, path in enumerate(files):  # provenance: jet i of a file is entry i of that file
        one = read_jetclass(path)
        sel = whole.source == i
        np.testing.assert_array_equal(whole.entry[sel], np.arange(len(one)))
        assert ak.array_equal(whole.particles[sel], one.particles)


def test_global_entry_range(files):
    whole = read_jetclass(files)
    part = read_jetclass(files, entry_start=5, entry_stop=25)
    assert_same_batch(part, whole[5:25])
    np.testing.assert_array_equal(np.bincount(part.source), [4, 13, 3])  # files of 9, 13, 17
    np.testing.assert_array_equal(part.entry[[0, 4, -1]], [5, 0, 2])
    assert len(read_jetclass(files, entry_start=-3)) == 3


def test_missing_garbage_and_truncated_files(tmp_path, files):
    with pytest.raises(JetDataError, match=r"nothere\.root: no such file"):
        read_jetclass(tmp_path / "nothere.root")
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"this is not ROOT" * 100)
    with pytest.raises(JetDataError, match=r"garbage\.root: not a readable ROOT file"):
        read_jetclass(garbage)
    truncated = tmp_path / "truncated.root"
    data = open(files[2], "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(JetDataError, match=r"truncated\.root"):
        read_jetclass(truncated)


def test_wrong_tree_and_missing_branch(tmp_path, jets):
    wrong = _write(tmp_path / "wrong.root", jets, tree="Events")
    with pytest.raises(JetDataError, match=r"wrong\.root: no TTree 'tree'.*Events"):
        read_jetclass(wrong)
    missing = _write(
        tmp_path / "missing.root", jets,
        lambda d: d.update(part=d["part"][[f for f in d["part"].fields if f != "energy"]]),
    )
    match = r"missing\.root: missing four-momentum branches \['part_energy'\]"
    with pytest.raises(JetDataError, match=match):
        read_jetclass(missing)
    with pytest.raises(JetDataError, match=match):
        next(iter_jetclass(missing))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("px", np.nan, "non-finite px"), ("energy", np.inf, "non-finite energy"),
     ("energy", -1.0, "negative energy")],
)
def test_invalid_momenta(tmp_path, jets, caplog, field, value, problem):
    bad = with_value(jets, 4, field, value)
    bad.extra = {key: np.zeros(len(bad)) for key in JET_BRANCHES.values()}
    path = str(tmp_path / "bad.root")
    if problem.startswith("non-finite"):  # the writer refuses, so write the branches directly
        refused = rf"bad\.root: refusing to write branch 'part_{field}"
        with pytest.raises(JetDataError, match=refused):
            write_jetclass(bad, path)
        _write(path, bad)
    else:
        write_jetclass(bad, path)
    with pytest.raises(JetDataError, match=rf"bad\.root: 1 jet\(s\) with {problem}.*bad\.root:4"):
        read_jetclass(path)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        kept = read_jetclass(path, skip_invalid=True)
    assert len(kept) == len(jets) - 1 and 4 not in kept.entry
    assert f"kept {len(jets) - 1} / {len(jets)}" in caplog.text and f"{problem}: 1" in caplog.text
    chunks = list(iter_jetclass(path, step_size=4, skip_invalid=True))
    assert sum(len(c) for c in chunks) == len(jets) - 1


def test_zero_particle_jets(tmp_path, caplog):
    batch = random_jets(5, seed=6, counts=[3, 0, 1, 0, 2])
    path = _write(tmp_path / "empty.root", batch)
    with pytest.raises(JetDataError, match=r"empty\.root: 2 jet\(s\) with zero particles"):
        read_jetclass(path)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        kept = read_jetclass(path, skip_invalid=True)
    np.testing.assert_array_equal(kept.entry, [0, 2, 4])
    np.testing.assert_array_equal(kept.n_particles, [3, 1, 2])
    assert "zero particles: 2" in caplog.text


def _with_partons(data, n_partons):
    """Replace the scalar aux_genpart_* branches by jagged ones (1-3 partons per jet)."""
    rng = np.random.default_rng(8)
    total = int(np.sum(n_partons))
    for name in ("pt", "eta", "phi", "pid"):
        data.pop(f"aux_genpart_{name}", None)
    data["aux_genpart"] = ak.zip({
        "pt": ak.unflatten(rng.uniform(20, 500, total).astype(np.float32), n_partons),
        "eta": ak.unflatten(rng.normal(0, 1, total).astype(np.float32), n_partons),
        "phi": ak.unflatten(rng.uniform(-3, 3, total).astype(np.float32), n_partons),
        "pid": ak.unflatten(rng.choice([1, 21, -2], total).astype(np.float32), n_partons),
    })
    return data


def test_jagged_aux_genpart_kept_as_ragged_extras(tmp_path, jets, caplog):
    """Issue 11 item 1: aux_genpart_* with 1-3 partons per jet gave a raw awkward error."""
    n_partons = (np.arange(len(jets)) % 3) + 1
    written = {}
    path = _write(tmp_path / "qcd.root", jets,
                  lambda d: written.update(_with_partons(d, n_partons)))
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        batch = read_jetclass(path)
    assert caplog.text == ""
    for name in ("pt", "eta", "phi", "pid"):
        extra = batch.extra[f"genpart_{name}"]
        assert isinstance(extra, ak.Array)
        assert ak.num(extra).tolist() == n_partons.tolist()
        assert extra.tolist() == written["aux_genpart"][name].tolist()
    np.testing.assert_array_equal(batch.label, jets.label)
    # slices, chunks and the Parquet round trip keep the ragged extras
    assert batch[3:5].extra["genpart_pt"].tolist() == written["aux_genpart"]["pt"][3:5].tolist()
    chunks = list(iter_jetclass(path, step_size=5))
    assert_same_batch(JetBatch.concatenate(chunks), batch)
    from jetfm.data.parquet import read_parquet, write_parquet

    write_parquet(batch, tmp_path / "qcd.parquet")
    back = read_parquet(tmp_path / "qcd.parquet")
    back.source_files = batch.source_files
    assert_same_batch(back, batch)
    # and the JetClass writer writes them as jagged branches again
    write_jetclass(batch, tmp_path / "again.root")
    again = read_jetclass(tmp_path / "again.root")
    assert again.extra["genpart_pid"].tolist() == batch.extra["genpart_pid"].tolist()


def test_only_the_four_momenta_are_required(tmp_path, jets, caplog):
    """No label_*, jet_*, aux_* or optional part_* branches: unlabelled jets, nothing else."""
    def strip(data):
        part = data["part"]
        data.clear()
        data["part"] = part[["px", "py", "pz", "energy"]]

    path = _write(tmp_path / "bare.root", jets, strip)
    with caplog.at_level(logging.INFO, logger="jetfm.data"):
        batch = read_jetclass(path)
    assert batch.fields == ("px", "py", "pz", "energy") and batch.extra == {}
    np.testing.assert_array_equal(batch.label, -1)
    assert "no label_* branches; its jets are unlabelled" in caplog.text
    for field in ("px", "energy"):
        expected = ak.values_astype(jets.particles[field], np.float32)
        assert ak.array_equal(batch.particles[field], expected)
    # an unlabelled batch is written without label branches and reads back unlabelled
    write_jetclass(batch, tmp_path / "unlabelled.root")
    assert not any(k.startswith("label_") for k in uproot.open(tmp_path / "unlabelled.root")[
        "tree"].keys())
    np.testing.assert_array_equal(read_jetclass(tmp_path / "unlabelled.root").label, -1)
    batch.label[0] = 3
    with pytest.raises(JetDataError, match=r"label for every jet or for none; 11 of 12"):
        write_jetclass(batch, tmp_path / "mixed.root")
    # files with and without the optional branches read together: the common part, one line
    full = str(tmp_path / "full.root")
    write_jetclass(jets, full)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        both = read_jetclass([full, path])
    assert both.fields == ("px", "py", "pz", "energy") and both.extra == {}
    assert len(caplog.records) == 1 and "left out" in caplog.text


def test_unusable_optional_branches_skipped_with_one_line(tmp_path, jets, caplog):
    def odd(data):
        data["part_d0val"] = np.ones(len(jets), np.float32)  # one value per jet, not particle
        data["part_dzval"] = ak.Array([[1.0, 2.0]] * len(jets))  # other counts than part_px
        data["aux_truth_match"] = np.ones((len(jets), 3), np.float32)  # fixed size: kept
        data["label_Hbb"] = ak.Array([[True]] * len(jets))  # a list per jet: not a label
        data["event_weight"] = np.ones(len(jets))  # unknown to jetfm: ignored
        data["part"] = data["part"][[f for f in data["part"].fields if f not in ("d0val",
                                                                              "dzval")]]

    path = _write(tmp_path / "odd.root", jets, odd)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        chunks = list(iter_jetclass(path, step_size=3))
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3, skipped  # one line per branch, not one per chunk
    for branch in ("part_d0val", "part_dzval", "label_Hbb"):
        assert sum(f"skipping branch {branch} " in m for m in skipped) == 1
    batch = JetBatch.concatenate(chunks)
    assert "d0val" not in batch.fields and "dzval" not in batch.fields
    assert batch.extra["truth_match"].shape == (len(jets), 3)
    np.testing.assert_array_equal(batch.label, jets.label)  # no Hbb jet among them
    assert len(read_jetclass(path)) == len(jets)


def test_writer_refuses_nan_it_computed(tmp_path, jets, monkeypatch):
    """Issue 11 item 2: a NaN from an observable is refused, naming the branch; no file."""
    from jetfm.physics import observables

    real = observables.nsubjettiness

    def broken(batch, n_max=4, **kwargs):
        tau = real(batch, n_max=n_max, **kwargs)
        tau[[2, 5], 1] = np.nan
        return tau

    monkeypatch.setattr(observables, "nsubjettiness", broken)
    path = tmp_path / "jets.root"
    with pytest.raises(JetDataError, match=r"jets\.root: refusing to write branch 'jet_tau2'.*"
                                           r"2 of 12 jets \(first: jet 2\)"):
        write_jetclass(jets, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(observables, "softdrop_mass", lambda batch, **kw: np.full(len(batch),
                                                                                  np.inf))
    from jetfm.data.aspen import write_aspen

    with pytest.raises(JetDataError, match=r"aoj\.h5: refusing to write column 'jet_kinematics'"
                                           r".*12 of 12 jets"):
        write_aspen(jets, tmp_path / "aoj.h5")
    assert list(tmp_path.iterdir()) == []
