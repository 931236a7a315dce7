"""jetfm.data.events: the Z + jets event format, its HDF5 files and the multiplicity selections."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from jetfm.data import events as ev
from jetfm.data.events import (
    MUON_MASS,
    Events,
    cap_low_multiplicities,
    concatenate_events,
    read_events,
    select_max_jets,
    write_events,
)

# exclusive multiplicities of the hand-made sample: n = 0: 10, 1: 6, 2: 2, 3: 4, 4: 1, 5: 2
N_JETS = np.array([0, 1, 3, 0, 0, 2, 1, 0, 5, 0, 3, 1, 0, 4, 0, 1, 3, 0, 2, 1, 0, 5, 3, 1, 0])


def sample(n_jets: np.ndarray = N_JETS, width: int = 6, seed: int = 0) -> Events:
    """Events with random kinematics, pT-ordered muons and jets, zero padding."""
    rng = np.random.default_rng(seed)
    n = len(n_jets)

    def objects(k: int, pt_min: float) -> np.ndarray:
        pt = -np.sort(-(pt_min + rng.exponential(30.0, (n, k))), axis=1)
        return np.stack([pt, rng.normal(0, 2, (n, k)), rng.uniform(-np.pi, np.pi, (n, k)),
                         rng.uniform(1, 20, (n, k))], axis=-1)

    muons = objects(2, 5.0)
    muons[..., 3] = MUON_MASS
    jets = objects(width, 20.0)
    jets[np.arange(width)[None, :] >= np.asarray(n_jets)[:, None]] = 0.0
    return Events(muons, jets, np.asarray(n_jets), {"source": "test", "seed": seed})


def assert_same(a: Events, b: Events) -> None:
    assert np.array_equal(a.muons, b.muons) and np.array_equal(a.jets, b.jets)
    assert np.array_equal(a.n_jets, b.n_jets) and a.n_jets.dtype == b.n_jets.dtype == np.int64
    assert a.meta == b.meta


# ------------------------------------------------------------------ the container
def test_accessors_on_the_hand_made_sample():
    events = sample()
    assert len(events) == 25 and events.max_jets == 6
    assert events.muons.dtype == events.jets.dtype == np.float64
    assert events.multiplicity_counts().tolist() == [10, 6, 2, 4, 1, 2, 0]
    assert events.multiplicity_counts(3).tolist() == [10, 6, 2, 4]  # n > 3 not counted
    values, mask = events.objects()
    assert values.shape == (25, 8, 4) and mask.shape == (25, 8)
    assert mask[:, :2].all() and np.array_equal(mask[:, 2:].sum(axis=1), N_JETS)
    assert np.array_equal(values[:, :2], events.muons) and np.all(values[~mask] == 0)


@pytest.mark.parametrize("index", [N_JETS >= 2, np.array([24, 2, 8]), slice(3, 20, 4), 8])
def test_getitem_keeps_padding_and_meta(index):
    events = sample()
    part = events[index]
    expected = np.atleast_1d(np.arange(25)[index])
    assert len(part) == len(expected) and part.max_jets == 6
    assert np.array_equal(part.jets, events.jets[expected])
    assert np.array_equal(part.n_jets, N_JETS[expected])
    for row, n in zip(part.jets, part.n_jets, strict=True):
        assert np.all(row[n:] == 0) and np.all(row[:n, 0] > 0)
    assert part.meta == events.meta and part.meta is not events.meta


@pytest.mark.parametrize("change, key, what", [
    (lambda m, j, n: (m, j, n + 10), "n_jets", "outside 0 ... J = 6"),
    (lambda m, j, n: (m, j, np.maximum(n - 1, 0)), "jets", "padding"),
    (lambda m, j, n: (m[:, ::-1], j, n), "muons", "not pT-descending"),
    (lambda m, j, n: (m, j[:, :, :3], n), "jets", "shape"),
    (lambda m, j, n: (m, np.where(j == j[2, 1, 0], np.nan, j), n), "jets", "non-finite"),
    (lambda m, j, n: (m, np.where(j == j[2, 1, 3], -1.0, j), n), "jets", "m breaks m >= 0"),
    (lambda m, j, n: (m, np.where(j == j[2, 1, 2], 4.0, j), n), "jets", "phi"),
    (lambda m, j, n: (m.astype(str), j, n), "muons", "dtype"),
])
def test_invalid_arrays_are_refused_naming_the_array(change, key, what):
    events = sample()
    muons, jets, n_jets = change(events.muons, events.jets, events.n_jets)
    with pytest.raises(ValueError, match=key) as err:
        Events(muons, jets, n_jets)
    assert what in str(err.value)


def test_phi_plus_pi_is_stored_as_minus_pi():
    events = sample()
    muons = events.muons.copy()
    muons[0, 0, 2] = math.pi
    assert Events(muons, events.jets, events.n_jets).muons[0, 0, 2] == -math.pi


def test_concatenate_pads_to_the_widest_part():
    a, b = sample(N_JETS[:5], width=3), sample(N_JETS[5:], width=6, seed=1)
    both = concatenate_events([a, b])
    assert len(both) == 25 and both.max_jets == 6
    assert np.array_equal(both.jets[:5, :3], a.jets) and np.all(both.jets[:5, 3:] == 0)
    assert np.array_equal(both.jets[5:], b.jets)
    assert both.meta == {"concatenated": [a.meta, b.meta]}
    assert concatenate_events([a, a]).meta == a.meta
    with pytest.raises(ValueError, match="no parts"):
        concatenate_events([])


# ------------------------------------------------------------------ selections
def test_select_max_jets_counts_and_trims():
    events = sample()
    kept, removed = select_max_jets(events, 3)
    assert removed == 3 and len(kept) == 22  # the 4- and two 5-jet events
    assert kept.max_jets == 3 and np.array_equal(kept.n_jets, N_JETS[N_JETS <= 3])
    assert np.array_equal(kept.jets, events.jets[N_JETS <= 3, :3])
    assert kept.meta["history"] == [{"select_max_jets": 3, "removed": 3}]
    assert select_max_jets(events, 9)[1] == 0 and select_max_jets(events, 9)[0].max_jets == 6
    with pytest.raises(ValueError, match="n_max"):
        select_max_jets(events, -1)


def test_cap_low_multiplicities_caps_at_the_three_jet_count():
    events = sample()
    capped, removed = cap_low_multiplicities(events, cap_below=3, seed=4)
    assert removed == {0: 6, 1: 2, 2: 0}  # 10 -> 4, 6 -> 4, 2 stays 2
    assert capped.multiplicity_counts().tolist() == [4, 4, 2, 4, 1, 2, 0]
    # a subset in the original order: the kept muons appear in events in increasing position
    position = [int(np.flatnonzero((events.muons == m).all(axis=(1, 2)))[0])
                for m in capped.muons]
    assert position == sorted(position) and len(set(position)) == len(capped)
    assert np.array_equal(capped.n_jets, N_JETS[position])
    again, _ = cap_low_multiplicities(events, 3, seed=4)
    assert_same(capped, again)
    other, _ = cap_low_multiplicities(events, 3, seed=5)
    assert not np.array_equal(other.muons, capped.muons)
    assert capped.meta["history"][-1]["removed"] == {"0": 6, "1": 2, "2": 0}


def test_cap_without_events_at_the_cap_is_refused():
    events = sample()[N_JETS != 3]
    with pytest.raises(ValueError, match="no event with 3 jets"):
        cap_low_multiplicities(events, 3)
    assert cap_low_multiplicities(events, 0)[1] == {}


# ------------------------------------------------------------------ files
def test_hdf5_round_trip_is_exact(tmp_path):
    events = sample()
    events.meta["cuts"] = {"events": {"processed": 30, "kept": 25}}
    path = write_events(events, tmp_path / "sub" / "zjets.h5")
    assert path == tmp_path / "sub" / "zjets.h5"
    assert_same(read_events(path), events)
    empty = events[np.zeros(25, dtype=bool)]
    assert_same(read_events(write_events(empty, tmp_path / "empty.h5")), empty)


def _rewrite(path, key, change):
    with h5py.File(path, "r+") as file:
        values = change(file[key][()])
        del file[key]
        if values is not None:
            file.create_dataset(key, data=values)


@pytest.mark.parametrize("key, change, what", [
    ("jets", lambda v: None, "missing key 'jets'"),
    ("jets", lambda v: np.where(v == v[2, 1, 1], np.nan, v), "jets: non-finite"),
    ("muons", lambda v: np.where(v == v[3, 0, 0], np.inf, v), "muons: non-finite"),
    ("n_jets", lambda v: v + 7, "n_jets: "),
    ("n_jets", lambda v: v - 1, "n_jets: "),
    ("muons", lambda v: v[:, :1], "muons: shape"),
])
def test_bad_files_name_the_file_and_key(tmp_path, key, change, what):
    path = write_events(sample(), tmp_path / "zjets.h5")
    _rewrite(path, key, change)
    with pytest.raises(ValueError) as err:
        read_events(path)
    assert str(err.value).startswith(f"{path}: ") and what in str(err.value)


def test_missing_foreign_and_non_hdf5_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no events file"):
        read_events(tmp_path / "absent.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match=f"{text}: not a readable HDF5 file"):
        read_events(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as file:
        file.create_dataset("jets", data=np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=f"{foreign}: not a jetfm events file"):
        read_events(foreign)
    path = write_events(sample(), tmp_path / "meta.h5")
    with h5py.File(path, "r+") as file:
        file.attrs["meta"] = "{broken"
    with pytest.raises(ValueError, match="'meta' is not valid JSON"):
        read_events(path)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        write_events(Events(sample().muons, sample().jets, N_JETS, {"x": object()}),
                     tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    old, new = sample(seed=1), sample(seed=2)
    path = write_events(old, tmp_path / "zjets.h5")
    calls = []

    def failing(self, name, *args, **kwargs):
        calls.append(name)
        if name == "jets":
            raise OSError("disk full")
        return original(self, name, *args, **kwargs)

    original = h5py.Group.create_dataset
    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        write_events(new, path)
    monkeypatch.undo()
    assert calls == ["muons", "jets"]
    assert_same(read_events(path), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zjets.h5"]  # no temporary left
    assert ev.FORMAT == "jetfm.events"


def test_is_events_file_and_info(tmp_path) -> None:
    """``jetfm info`` recognises jetfm's own events files (multiplicities, staircase ratios);
    ``is_events_file`` is False for anything else."""
    import subprocess
    import sys

    from jetfm.data.events import is_events_file

    rng = np.random.default_rng(0)
    n = 40
    n_jets = rng.integers(0, 3, n)
    muons = np.zeros((n, 2, 4))
    muons[..., 0] = [50.0, 30.0]
    jets = np.zeros((n, 2, 4))
    jets[..., 0] = np.where(np.arange(2)[None] < n_jets[:, None], [60.0, 25.0], 0.0)
    path = write_events(Events(muons, jets, n_jets, {}), tmp_path / "ev.h5")
    assert is_events_file(path)
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    assert not is_events_file(tmp_path / "x.h5") and not is_events_file(tmp_path / "none.h5")
    out = subprocess.run([sys.executable, "-m", "jetfm.cli", "info", str(path)],
                         capture_output=True, text=True, check=True).stdout
    counts = np.bincount(n_jets, minlength=3)
    assert f"{n} Z -> mu mu + jets events" in out
    assert f"0: {counts[0]}, 1: {counts[1]}, 2: {counts[2]}" in out
    assert "staircase ratios" in out
