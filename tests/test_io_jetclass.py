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
    JET_BRANCHES,
    PARTICLE_BRANCHES,
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
    # Particle fields: the float32 values of the input, the pid field is not a JetClass branch.
    for field in PARTICLE_BRANCHES.values():
        expected = ak.values_astype(jets.particles[field], np.float32)
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
    assert set(back.extra) == set(JET_BRANCHES.values())
    assert np.all(back.extra["truth_match"] == 0)
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


def test_generator_batch_has_zero_impact_parameters(tmp_path):
    batch = random_jets(4, seed=5)
    batch.particles = batch.particles[["px", "py", "pz", "energy"]]
    path = str(tmp_path / "gen.root")
    write_jetclass(batch, path)
    back = read_jetclass(path)
    assert ak.all(back.particles["d0val"] == 0) and ak.all(back.particles["is_photon"] == 0)


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


def test_quark_gluon_written_as_qcd_and_unlabelled_refused(tmp_path, jets):
    batch = jets[:4]
    batch.label = np.array([CLASS_INDEX[c] for c in ("QCD_quark", "QCD_gluon", "Hbb", "QCD")])
    path = str(tmp_path / "qg.root")
    write_jetclass(batch, path)
    np.testing.assert_array_equal(read_jetclass(path).label, [0, 0, 1, 0])
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
