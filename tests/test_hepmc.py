"""HepMC event files -> jets (jetfm.data.hepmc, ``jetfm cluster``).

The files are written here with pyhepmc from a few Pythia 8 events of jetfm's own generator
settings (ZH, H -> b b~, Z -> nu nu~: every event has invisible particles), with the full
history (beams status 4, decayed particles, final state status 1). The reference jets come
from the Pythia record itself (final state, neutrinos and |eta| >= 5 removed) clustered
event by event with FastJet's classic PseudoJet interface, independently of the reader.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import awkward as ak
import fastjet
import numpy as np
import pyhepmc
import pytest

from jetfm.cli import main
from jetfm.data.classes import class_index
from jetfm.data.hepmc import (
    ClusterConfig,
    HepMCError,
    cluster_file,
    invisible,
    iter_events,
)
from jetfm.data.io import read_jets
from jetfm.data.pythia import GeneratorConfig
from jetfm.data.summary import read_sidecar

N_EVENTS = 6
CONFIG = ClusterConfig(jet_r=0.4, pt_min=20.0, pt_max=None, eta_max=2.0)
PARTICLE_ETA_MAX = 5.0


# ---------------------------------------------------------------------- writing HepMC files
def _mothers(m1: int, m2: int) -> tuple[int, ...]:
    """Pythia's mother convention (Pythia 8 manual, "Particle Properties") as a tuple."""
    if m1 <= 0 and m2 <= 0:
        return ()
    if m2 <= 0 or m2 == m1:
        return (m1,)
    if m1 < m2:
        return tuple(range(m1, m2 + 1))
    return (m1, m2)


def to_genevent(prt: ak.Record, number: int, weight: float | None = None) -> pyhepmc.GenEvent:
    """A Pythia event record (entry 0, the system, left out) as a HepMC3 event in GeV.

    Status: 1 final, 4 beams, else |Pythia status| (HepMC convention, as Pythia8ToHepMC).
    Particles are added parents first (HepMC3's reader needs that); one vertex per set of
    mothers.
    """
    n = len(prt)
    p = prt["p"]
    status = [0] + [1 if s > 0 else 4 if s == -12 else -s for s in prt["status"][1:].tolist()]
    moms = [()] + [tuple(m for m in _mothers(a, b) if m > 0)
                   for a, b in zip(prt["mother1"][1:].tolist(), prt["mother2"][1:].tolist(),
                                   strict=True)]
    order: list[int] = []
    seen: set[int] = set()
    for j in range(1, n):
        stack = [(j, False)]
        while stack:
            k, done = stack.pop()
            if done:
                order.append(k)
            elif k not in seen:
                seen.add(k)
                stack.append((k, True))
                stack.extend((m, False) for m in moms[k] if m not in seen)
    px, py, pz, e = (p[c].tolist() for c in ("px", "py", "pz", "e"))
    pid = prt["id"].tolist()
    parts = [None] + [pyhepmc.GenParticle((px[j], py[j], pz[j], e[j]), pid[j], status[j])
                      for j in range(1, n)]
    event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    event.event_number = number
    if weight is not None:
        event.weights = [weight]
    for j in order:
        event.add_particle(parts[j])
    vertices: dict[tuple[int, ...], pyhepmc.GenVertex] = {}
    for j in order:
        if not moms[j]:
            continue
        vertex = vertices.get(moms[j])
        if vertex is None:
            vertex = pyhepmc.GenVertex()
            for m in moms[j]:
                if parts[m].end_vertex is None:
                    vertex.add_particle_in(parts[m])
            if not vertex.particles_in:
                continue
            event.add_vertex(vertex)
            vertices[moms[j]] = vertex
        vertex.add_particle_out(parts[j])
    return event


@pytest.fixture(scope="module")
def pythia_events() -> list[ak.Record]:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in GeneratorConfig("hbb", pt_min=100.0, pt_max=None).pythia_lines(7):
        assert pythia.readString(line)
    assert pythia.init()
    return list(pythia.nextBatch(N_EVENTS, 10.0)["prt"])


@pytest.fixture(scope="module")
def genevents(pythia_events) -> list[pyhepmc.GenEvent]:
    return [to_genevent(prt, 100 + i, weight=0.5 + i) for i, prt in enumerate(pythia_events)]


@pytest.fixture(scope="module")
def files(pythia_events, genevents, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hepmc")
    out = {}
    for name, fmt in (("events.hepmc", "hepmc3"), ("events.hepmc2", "hepmc2"),
                      ("events.hepmc.gz", "hepmc3")):
        with pyhepmc.open(folder / name, "w", format=fmt) as f:
            for event in genevents:
                f.write(event)
        out[name] = folder / name
    with pyhepmc.open(folder / "mev.hepmc", "w") as f:
        for i, prt in enumerate(pythia_events):
            event = to_genevent(prt, 100 + i, weight=0.5 + i)
            event.set_units(pyhepmc.Units.MEV, pyhepmc.Units.MM)  # momenta x 1000
            f.write(event)
    out["mev.hepmc"] = folder / "mev.hepmc"
    return out


# ---------------------------------------------------------------------- the reference
def reference(pythia_events, config: ClusterConfig) -> dict:
    """Jets of the Pythia records: final state (status > 0), no neutrinos, |eta| < 5,
    clustered per event with FastJet's classic interface; constituents float32, pT-ordered."""
    jets, events, counts = [], [], {"jets": 0, "low": 0, "high": 0, "eta": 0}
    n_final = n_nu = n_outside = 0
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, config.jet_r)
    for i, prt in enumerate(pythia_events):
        final = ak.to_numpy(prt["status"]) > 0
        final[0] = False
        p4 = np.stack([ak.to_numpy(prt["p"][c]) for c in ("px", "py", "pz", "e")], axis=1)
        nu = final & np.isin(np.abs(ak.to_numpy(prt["id"])), (12, 14, 16))
        pt = np.hypot(p4[:, 0], p4[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.arcsinh(p4[:, 2] / pt)
        inside = np.abs(eta) < PARTICLE_ETA_MAX
        n_final += int(final.sum())
        n_nu += int(nu.sum())
        n_outside += int((final & ~nu & ~inside).sum())
        keep = np.flatnonzero(final & ~nu & inside)
        pseudojets = []
        for k in keep:
            pj = fastjet.PseudoJet(*(float(v) for v in p4[k]))
            pj.set_user_index(int(k))
            pseudojets.append(pj)
        sequence = fastjet.ClusterSequence(pseudojets, jet_def)
        for jet in fastjet.sorted_by_pt(sequence.inclusive_jets(0.5 * config.pt_min)):
            counts["jets"] += 1
            if jet.pt() < config.pt_min:
                counts["low"] += 1
            elif config.pt_max is not None and jet.pt() > config.pt_max:
                counts["high"] += 1
            elif abs(jet.eta()) > config.eta_max:
                counts["eta"] += 1
            else:
                index = np.array([c.user_index() for c in jet.constituents()])
                c4 = p4[index]
                order = np.argsort(-np.hypot(c4[:, 0], c4[:, 1]).astype(np.float32),
                                   kind="stable")
                jets.append((c4[order].astype(np.float32),
                             ak.to_numpy(prt["id"])[index][order]))
                events.append(i)
    return {"jets": jets, "events": np.array(events), "counts": counts, "n_final": n_final,
            "n_nu": n_nu, "n_outside": n_outside}


def constituents(batch, i: int) -> np.ndarray:
    return np.stack([ak.to_numpy(batch.particles[c][i])
                     for c in ("px", "py", "pz", "energy")], axis=1)


def assert_same_jets(batch, ref: dict) -> None:
    assert len(batch) == len(ref["jets"]) > 0
    np.testing.assert_array_equal(batch.entry, ref["events"])
    for i, (c4, pid) in enumerate(ref["jets"]):
        np.testing.assert_array_equal(constituents(batch, i), c4)
        np.testing.assert_array_equal(ak.to_numpy(batch.particles["pid"][i]), pid)


# ---------------------------------------------------------------------- agreement
def test_jets_equal_fastjet_on_the_same_particles(files, pythia_events):
    batch, reports = cluster_file(files["events.hepmc"], CONFIG)
    ref = reference(pythia_events, CONFIG)
    assert_same_jets(batch, ref)  # float32 constituents bit for bit, same jets, same order
    assert len(np.unique(batch.entry)) > 1 and np.bincount(batch.entry).max() > 1
    np.testing.assert_array_equal(batch.extra["event_number"], 100 + batch.entry)
    np.testing.assert_array_equal(batch.extra["event_weight"], 0.5 + batch.entry)
    assert (batch.label == -1).all()
    assert batch.source_files == (str(files["events.hepmc"]),)
    # the selection report counts what each step removed, as jetfm generate's
    events, particles, jets = reports
    assert (events.n_before, events.n_after) == (N_EVENTS, N_EVENTS)
    assert particles.n_before == ref["n_final"]
    assert ref["n_nu"] >= 2 * N_EVENTS  # Z -> nu nu~ in every event
    assert particles.removed == {"invisible (neutrinos, neutral BSM)": ref["n_nu"],
                                 "|eta| >= 5": ref["n_outside"]}
    assert particles.n_after == ref["n_final"] - ref["n_nu"] - ref["n_outside"]
    counts = ref["counts"]
    assert jets.n_before == counts["jets"] and jets.n_after == len(batch)
    assert jets.removed == {"pT < 20 GeV": counts["low"], "pT > none GeV": counts["high"],
                            "|eta| > 2": counts["eta"], "beyond requested number": 0}
    assert counts["low"] > 0 and counts["eta"] > 0
    assert "anti-kt R=0.4 jets with pT > 10 GeV from 6 events" in jets.name


def test_jet_radius_and_pt_window_follow_the_options(files, pythia_events):
    config = replace(CONFIG, jet_r=0.8, pt_min=40.0, pt_max=115.0, eta_max=1.5)
    batch, reports = cluster_file(files["events.hepmc"], config)
    ref = reference(pythia_events, config)
    assert_same_jets(batch, ref)
    assert reports[2].removed["pT > 115 GeV"] == ref["counts"]["high"] > 0
    assert reports[2].removed["|eta| > 1.5"] == ref["counts"]["eta"] > 0
    assert ((batch.jet_pt >= 40) & (batch.jet_pt <= 115) & (np.abs(batch.jet_eta) <= 1.5)).all()


def test_hardest_jets_per_event_and_total_are_counted(files, pythia_events):
    all_jets, _ = cluster_file(files["events.hepmc"], CONFIG)
    per_event = np.bincount(all_jets.entry)
    lead, reports = cluster_file(files["events.hepmc"], replace(CONFIG, jets_per_event=1))
    first = np.r_[0, np.cumsum(per_event)[:-1]][per_event > 0]  # jets are pT-ordered per event
    assert len(lead) == int((per_event > 0).sum())
    for i, j in enumerate(first):
        np.testing.assert_array_equal(constituents(lead, i), constituents(all_jets, int(j)))
    assert reports[2].removed["beyond the 1 hardest of an event"] == len(all_jets) - len(lead)
    three, reports = cluster_file(files["events.hepmc"], replace(CONFIG, n_jets=3))
    assert len(three) == 3
    np.testing.assert_array_equal(three.entry, all_jets.entry[:3])
    assert reports[2].removed["beyond requested number"] == len(all_jets) - 3


def test_hepmc2_and_gzip_give_the_same_jets(files):
    batch, _ = cluster_file(files["events.hepmc"], CONFIG)
    for name in ("events.hepmc2", "events.hepmc.gz"):
        other, _ = cluster_file(files[name], CONFIG)
        assert len(other) == len(batch)
        for i in range(len(batch)):
            np.testing.assert_array_equal(constituents(other, i), constituents(batch, i))


def test_mev_files_are_converted_to_gev(files):
    text = files["mev.hepmc"].read_text()
    assert "\nU MEV MM\n" in text  # the file really holds MeV: 6.5 TeV beams as 6.5e6
    assert "6.5000000000000000e+06" in text
    gev, gev_reports = cluster_file(files["events.hepmc"], CONFIG)
    mev, mev_reports = cluster_file(files["mev.hepmc"], CONFIG)
    assert [str(r).replace("mev", "events") for r in mev_reports] == \
        [str(r) for r in gev_reports]
    assert len(mev) == len(gev)
    for i in range(len(gev)):
        np.testing.assert_allclose(constituents(mev, i), constituents(gev, i), rtol=1e-6,
                                   atol=1e-6)
    events = list(iter_events(files["mev.hepmc"]))
    assert max(abs(e.p4[:, 3]).max() for e in events) == pytest.approx(6500.0)


def test_invisible_particles():
    pid = np.array([12, -14, 16, 1000022, 1000039, -1000012, 4900111, 9900012,
                    22, 21, 211, -211, 130, 2112, 111, 11, -13, 2, 1000612])
    expected = [True] * 8 + [False] * 11
    np.testing.assert_array_equal(invisible(pid), expected)
    with pytest.raises(HepMCError, match=r"x.hepmc: .*PDG id\(s\) \[0, 99999999\]"):
        invisible(np.array([211, 0, 99999999]), "x.hepmc")


def test_configuration_is_checked():
    for bad in ({"pt_min": 600.0, "pt_max": 500.0}, {"jet_r": 0.0}, {"eta_max": -1.0},
                {"jets_per_event": 0}, {"n_jets": 0}, {"label": 99}, {"pt_min": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ClusterConfig(**bad)


# ---------------------------------------------------------------------- the command
def test_cluster_command_writes_a_jetclass_file(files, tmp_path, capsys):
    out = tmp_path / "jets.root"
    argv = ["cluster", str(files["events.hepmc"]), "--out", str(out), "--label", "Hbb",
            "--jet-r", "0.4", "--pt-min", "20", "--pt-max", "5000", "--eta-max", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    expected, reports = cluster_file(files["events.hepmc"],
                                     replace(CONFIG, pt_max=5000.0, label=class_index("Hbb")))
    assert f"{len(expected)} jets from {N_EVENTS} events" in printed
    for report in reports:
        assert str(report) in printed
    jets = read_jets([str(out)])  # jetfm's own loader reads it back
    assert len(jets) == len(expected)
    assert (jets.label == class_index("Hbb")).all()
    for i in range(len(jets)):
        np.testing.assert_array_equal(constituents(jets, i), constituents(expected, i))
    np.testing.assert_array_equal(jets.extra["event_number"], expected.extra["event_number"])
    np.testing.assert_allclose(jets.extra["jet_pt"], expected.jet_pt, rtol=1e-6)
    assert {"charge", "pid", "is_photon", "d0val"} <= set(jets.fields)
    side = read_sidecar(out)
    assert side is not None
    assert [str(r) for r in side[0]] == [str(r) for r in reports]
    assert side[1]["source"] == str(files["events.hepmc"]) and side[1]["jet_r"] == 0.4
    # `jetfm info` names the events file and the clustering, not a Pythia process
    assert main(["info", str(out)]) == 0
    info = " ".join(capsys.readouterr().out.split())
    assert f"clustered from: {files['events.hepmc']}" in info and "anti-kt R=0.4" in info
    assert "process=None" not in info


# ---------------------------------------------------------------------- bad input
def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _event_starts(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith("E ")]


def _bad_files(folder: Path, good: Path, genevents) -> dict[str, tuple[Path, str, list[str]]]:
    """name -> (file, what the error must say, extra options)."""
    lines = _lines(good)
    starts = _event_starts(lines)
    cases: dict[str, tuple[Path, str, list[str]]] = {}

    def case(name: str, content: str | bytes, message: str, options: list[str] | None = None):
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        cases[name] = (path, message, options or [])

    case("truncated.hepmc", "".join(lines[: starts[1] + 40]),
         r"event #2 \(after event number 100\) cannot be parsed: the file is truncated")
    case("cut_mid_line.hepmc", "".join(lines[: starts[2] + 40])[:-25],
         r"event #3 \(after event number 101\) cannot be parsed")
    case("no_footer.hepmc", "".join(lines[: starts[3]]),
         r"ends after event #3 \(event number 102\) without the HepMC3 end-of-listing line")
    case("empty.hepmc", "", r"empty file \(0 bytes\)")
    case("no_events.hepmc", "".join(lines[:2]) + "HepMC::Asciiv3-END_EVENT_LISTING\n",
         "a HepMC3 file without events")
    case("text.hepmc", "px py pz E\n1 2 3 4\n", r"not a HepMC event file.*'px py pz E'")
    case("binary.hepmc", bytes(range(256)) * 4, "not a HepMC event file")
    case("events.lhe", '<LesHouchesEvents version="3.0">\n<init>\n</init>\n',
         r"Les Houches \(LHE\) file: parton-level events")
    case("gzip_in_name.hepmc.gz", "".join(lines), "cannot be decompressed as .gz")

    # events without visible final-state particles: beams, a decayed Z, its neutrinos
    def write(name: str, events: list[pyhepmc.GenEvent], message: str,
              options: list[str] | None = None) -> None:
        path = folder / name
        with pyhepmc.open(path, "w") as f:
            for event in events:
                f.write(event)
        cases[name] = (path, message, options or [])

    def invisible_event(number: int, pids: tuple[int, ...] = (12, -12),
                        momenta: tuple[float, ...] = (50.0, 0.0, 10.0)) -> pyhepmc.GenEvent:
        event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
        event.event_number = number
        beams = [pyhepmc.GenParticle((0, 0, s * 6500.0, 6500.0), 2212, 4) for s in (1, -1)]
        z = pyhepmc.GenParticle((0, 0, 0, 91.2), 23, 2)
        hard = pyhepmc.GenVertex()
        for beam in beams:
            hard.add_particle_in(beam)
        hard.add_particle_out(z)
        decay = pyhepmc.GenVertex()
        decay.add_particle_in(z)
        px, py, pz = momenta
        for sign, pid in zip((1, -1), pids, strict=True):
            e = float(np.sqrt(px**2 + py**2 + pz**2)) if np.isfinite(px) else 45.6
            decay.add_particle_out(pyhepmc.GenParticle((sign * px, py, sign * pz, e), pid, 1))
        event.add_vertex(hard)
        event.add_vertex(decay)
        return event

    write("only_neutrinos.hepmc", [invisible_event(n) for n in (1, 2)],
          r"no visible final-state particle .* in its 2 event\(s\).*invisible \(neutrinos, "
          r"neutral BSM\): 4")
    write("non_finite.hepmc", [invisible_event(5), invisible_event(7, (211, -211),
                                                                   (np.nan, 0.0, 1.0))],
          r"event #2 \(event number 7\): 2 final-state particle\(s\) with a non-finite momentum")
    write("unknown_pid.hepmc", [invisible_event(3, (211, 99999999))],
          r"event #1 \(event number 3\): final-state particle\(s\) with PDG id\(s\) \[99999999\]")
    write("no_jets.hepmc", genevents[:2],
          r"no jet passed the selection; .*jets with pT > 1500 GeV from 2 events: kept 0 / 0",
          ["--pt-min", "3000", "--pt-max", "6000"])
    cases["missing.hepmc"] = (folder / "missing.hepmc", "no such HepMC file", [])
    return cases


BAD = ("truncated.hepmc", "cut_mid_line.hepmc", "no_footer.hepmc", "empty.hepmc",
       "no_events.hepmc", "text.hepmc", "binary.hepmc", "events.lhe", "gzip_in_name.hepmc.gz",
       "only_neutrinos.hepmc", "non_finite.hepmc", "unknown_pid.hepmc", "no_jets.hepmc",
       "missing.hepmc")


@pytest.fixture(scope="module")
def bad_files(files, genevents, tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"), files["events.hepmc"], genevents)


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_one_clear_error_and_no_output(bad_files, name, tmp_path, capfd):
    path, message, options = bad_files[name]
    out = tmp_path / "out" / "jets.root"
    argv = ["cluster", str(path), "--out", str(out), "--label", "QCD", *options]
    assert main(argv) == 2
    captured = capfd.readouterr()
    err = captured.err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith(f"jetfm cluster: error: {path}")
    assert re.search(message, err), err
    assert "Traceback" not in captured.err
    assert "expected" not in captured.out and "Parsing failed" not in captured.out
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_a_truncated_file_is_refused_even_after_good_events(bad_files):
    events = iter_events(bad_files["truncated.hepmc"][0])
    first = next(events)  # the complete first event is read ...
    assert first.number == 100 and first.position == 0
    with pytest.raises(HepMCError, match="event #2"):  # ... then the truncation is an error
        next(events)
