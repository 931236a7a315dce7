"""Built-in jet generator: Pythia 8 (pp at 13 TeV) + FastJet anti-kt, no download needed.

Events come from ``pythia8mc``'s batch interface (``Pythia.nextBatch``, awkward arrays) and
are clustered event-batch-wise with ``fastjet.ClusterSequence`` (anti-kt, R = 0.8) on all
visible final-state particles: neutrinos (|pid| 12, 14, 16) are invisible, and particles
beyond |eta| > ``particle_eta_max`` (default 5, the calorimeter acceptance) are not clustered.
K0S and Lambda count as stable (``ParticleDecays:tau0Max`` = 10 mm), as in a detector.

Processes (``PROCESSES`` maps them to :data:`jetfm.data.classes.CLASSES` names):

* ``qcd`` -> ``QCD``: hard QCD 2->2 with light outgoing flavours (gg->gg, gg->qq~, qg->qg,
  qq->qq, qq~->gg, qq~->q'q~' with q' in u, d, s). Jets matched to a c or b hard parton
  (from incoming heavy flavour) are removed and counted when truth matching is required.
* ``top`` -> ``Tbqq``: tt~ with both W -> q q' (each top can give a jet).
* ``w`` -> ``Wqq``: W + jet (qq~'->Wg, qg->Wq'), W -> q q'.
* ``z`` -> ``Zqq``: Z + jet (qq~->Zg, qg->Zq, pure Z: ``WeakZ0:gmZmode = 2``), Z -> q q~.
* ``hbb`` -> ``Hbb``: ZH (ff~->HZ) with H -> b b~ and Z -> nu nu~ (no other visible hard jet).

The hard scale window ``PhaseSpace:pTHatMin/Max`` defaults to [0.9 pt_min, 1.1 pt_max] so that
most events give a jet in the pT window; jets just above ``pt_min`` from events below
0.9 pt_min are missed (a per-cent-level sculpting at the lower edge).

Resonance jets are truth matched: all decay quarks of the resonance (top: the b and both W
quarks; W/Z/H: both quarks, taken where the resonance decays) lie within ``truth_match_r``
of the jet axis. QCD jets are matched to the closest outgoing hard parton. Per jet, ``extra``
holds ``truth_match`` (bool), ``genpart_pt`` [GeV], ``genpart_eta``, ``genpart_phi`` [rad],
``genpart_pid`` (the resonance, or the QCD parton) and ``truth_max_dr`` (largest distance of
the decay quarks, or of the parton, to the jet axis).

Particles carry ``px, py, pz, energy`` [GeV] (float32), ``pid`` (int32), ``charge`` from the
PDG id (:func:`jetfm.data.pid.charge_from_pid`), the five JetClass type flags and impact
parameters ``d0val, d0err, dzval, dzerr`` = 0 (generator level: no tracking). Constituents are
pT-ordered.

Reproducibility: the random streams are derived from (seed, process, worker), never from
the position of a process in a list. Worker k of ``workers`` uses
``S = numpy.random.SeedSequence([seed, key(process), k])`` with ``key`` the 8-byte BLAKE2b
digest (``digest_size=8``, little-endian) of the process name (stable across runs and machines,
unlike Python's salted ``hash``). Pythia gets ``Random:seed`` = 1 + (first word of S) mod
899999999, inside Pythia's range 1 ... 900000000 (0 would mean "seed from the clock"), and
smearing draws from ``numpy.random.default_rng(S)``. Worker k produces jets
k * n // workers ... (k + 1) * n // workers, so the output depends only on (seed, process,
workers): ``top`` jets are the same whether generated alone or next to ``qcd``.

No endless loops: a worker that has processed at least ``max_events_without_jet`` events
(checked after each batch of ``events_per_batch``) since its last accepted jet, or since its
start, stops with a :class:`SelectionError` that reports how many events and jets it saw and
what each cut removed, e.g. for cuts no event can pass.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import queue
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
from tqdm.auto import tqdm

from jetfm._warnings import print_fastjet_banner, silence_fastjet_banner
from jetfm.data.batch import PARTICLE_TYPE_FLAGS, JetBatch, SelectionReport
from jetfm.data.classes import UNLABELLED, class_index
from jetfm.data.pid import charge_from_pid, particle_type_flags
from jetfm.data.smearing import SmearingConfig, smear
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import antikt_event_jets

PROCESSES: dict[str, str] = {
    "qcd": "QCD",
    "top": "Tbqq",
    "w": "Wqq",
    "z": "Zqq",
    "hbb": "Hbb",
}

_HADRONIC_W = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_PROCESS_SETTINGS: dict[str, tuple[str, ...]] = {
    "qcd": (
        "HardQCD:gg2gg = on",
        "HardQCD:gg2qqbar = on",
        "HardQCD:qg2qg = on",
        "HardQCD:qq2qq = on",
        "HardQCD:qqbar2gg = on",
        "HardQCD:qqbar2qqbarNew = on",
        "HardQCD:nQuarkNew = 3",
    ),
    "top": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W),
    "w": ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on", *_HADRONIC_W),
    "z": (
        "WeakBosonAndParton:qqbar2gmZg = on",
        "WeakBosonAndParton:qg2gmZq = on",
        "WeakZ0:gmZmode = 2",
        "23:onMode = off",
        "23:onIfAny = 1 2 3 4 5",
    ),
    "hbb": (
        "HiggsSM:ffbar2HZ = on",
        "25:onMode = off",
        "25:onIfAny = 5",
        "23:onMode = off",
        "23:onIfAny = 12 14 16",
    ),
}
_RESONANCE: dict[str, int] = {"top": 6, "w": 24, "z": 23, "hbb": 25}
_NEUTRINOS = (12, 14, 16)
_HEAVY_QUARKS = (4, 5)
_MAX_PRONGS = 3  # top: b, q, q'
_JET_FLOOR = 0.5  # jets above this fraction of pt_min enter the selection report
_MAX_SEED = 900_000_000  # Pythia's Random:seed range; 0 would mean "seed from the clock"


class SelectionError(ValueError):
    """No jet passed the selection within ``max_events_without_jet`` events (counts inside)."""


@dataclass
class GeneratorConfig:
    """What to generate. Momenta in GeV; ``mpi`` switches multiparton interactions.

    ``mpi = False`` (default) is 3-5x faster but has no underlying event: fewer constituents
    (top jets ~71 instead of ~76, W jets ~41 instead of ~47) and lower jet masses (median top
    ~174 instead of ~178 GeV, W ~83 instead of ~89 GeV). ``pthat_min/max`` default to
    [0.9 pt_min, 1.1 pt_max] (no upper bound without ``pt_max``). ``labelled = False`` gives
    label -1 (as real data). ``max_particles`` keeps the hardest constituents (dropped count
    reported); ``smearing`` applies :mod:`jetfm.data.smearing` before clustering.
    ``events_per_batch`` (events per ``nextBatch`` call) changes memory use, not the jets.
    ``max_events_without_jet`` (default 10,000) bounds the events a worker may process since
    its last accepted jet before it stops with a :class:`SelectionError`; the default is far
    above what the built-in processes need with the JetClass cuts (a few events per jet), so
    it only stops cuts that (almost) nothing passes (e.g. ``pt_min`` near the pT-hat limit).
    """

    process: str
    pt_min: float = 500.0
    pt_max: float | None = 1000.0
    eta_max: float = 2.0
    jet_r: float = 0.8
    mpi: bool = False
    sqrt_s: float = 13000.0
    truth_match_r: float = 0.8
    require_truth_match: bool = True
    max_particles: int | None = None
    smearing: SmearingConfig | None = None
    labelled: bool = True
    pthat_min: float | None = None
    pthat_max: float | None = None
    particle_eta_max: float = 5.0
    events_per_batch: int = 200
    max_events_without_jet: int = 10_000
    pythia_settings: tuple[str, ...] = field(default_factory=tuple)  # extra readString lines

    def __post_init__(self) -> None:
        """Check the configuration (also after :func:`dataclasses.replace`); ``ValueError``."""
        if self.process not in PROCESSES:
            raise ValueError(f"unknown process {self.process!r}; choose from {list(PROCESSES)}")
        positive = {"pt_min": self.pt_min, "eta_max": self.eta_max, "jet_r": self.jet_r,
                    "sqrt_s": self.sqrt_s, "truth_match_r": self.truth_match_r,
                    "particle_eta_max": self.particle_eta_max}
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.pt_max is not None and not self.pt_max > self.pt_min:
            raise ValueError(f"pt_max ({self.pt_max}) must exceed pt_min ({self.pt_min}); "
                             "raise pt_max (--pt-max) together with pt_min")
        if 2 * self.pt_min >= self.sqrt_s:
            raise ValueError(f"pt_min ({self.pt_min} GeV) is beyond the kinematic limit "
                             f"sqrt_s / 2 = {self.sqrt_s / 2:g} GeV")
        if self.max_particles is not None and self.max_particles < 1:
            raise ValueError(f"max_particles must be >= 1, got {self.max_particles}")
        for name in ("events_per_batch", "max_events_without_jet"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def aspen_like(cls, smear: bool = True) -> GeneratorConfig:
        """AspenOpenJets-like QCD jets: pT > 300 GeV, |eta| < 2.5, <= 150 constituents.

        Unlabelled (-1) like the real data, no truth-match requirement (the truth columns are
        still filled), detector smearing with the default :class:`SmearingConfig` if ``smear``.
        """
        return cls(
            process="qcd",
            pt_min=300.0,
            pt_max=None,
            eta_max=2.5,
            require_truth_match=False,
            max_particles=150,
            smearing=SmearingConfig() if smear else None,
            labelled=False,
        )

    def pythia_lines(self, seed: int) -> list[str]:
        """All Pythia ``readString`` settings for this configuration and a Pythia seed."""
        pthat_min = self.pthat_min if self.pthat_min is not None else 0.9 * self.pt_min
        pthat_max = self.pthat_max
        if pthat_max is None and self.pt_max is not None:
            pthat_max = 1.1 * self.pt_max
        return [
            f"Beams:eCM = {self.sqrt_s}",
            *_PROCESS_SETTINGS[self.process],
            f"PhaseSpace:pTHatMin = {pthat_min}",
            f"PhaseSpace:pTHatMax = {pthat_max if pthat_max is not None else -1.0}",
            f"PartonLevel:MPI = {'on' if self.mpi else 'off'}",
            "ParticleDecays:limitTau0 = on",
            "ParticleDecays:tau0Max = 10",
            "Random:setSeed = on",
            f"Random:seed = {seed}",
            "Print:quiet = on",
            *self.pythia_settings,
        ]

    def tag(self, seed: int) -> str:
        """Provenance string, e.g. ``pythia8:top:seed=1``."""
        return f"pythia8:{self.process}:seed={seed}"


# ---------------------------------------------------------------------- truth
@dataclass
class _Truth:
    """Truth objects of a batch of events: resonances (or QCD partons) and their prongs."""

    event: np.ndarray  # (n_obj,) event index
    p4: np.ndarray  # (n_obj, 4) px, py, pz, E
    pid: np.ndarray  # (n_obj,)
    prong_eta: np.ndarray  # (n_obj, 3), NaN where unused
    prong_phi: np.ndarray


def _flat(prt: ak.Array, name: str) -> np.ndarray:
    return ak.to_numpy(ak.flatten(prt[name]))


def _truth(prt: ak.Array, process: str) -> _Truth:
    """Find the truth objects in Pythia event records (``events.prt``)."""
    counts = ak.to_numpy(ak.num(prt))
    offset = np.repeat(np.cumsum(counts) - counts, counts)
    event = np.repeat(np.arange(len(counts)), counts)
    pid = _flat(prt, "id")
    status = _flat(prt, "status")
    d1 = _flat(prt, "daughter1") + offset
    d2 = _flat(prt, "daughter2") + offset
    p = prt["p"]
    p4 = np.stack([_flat(p, c) for c in ("px", "py", "pz", "e")], axis=1)
    eta = kin.eta(p4[:, 0], p4[:, 1], p4[:, 2])
    phi = kin.phi(p4[:, 0], p4[:, 1])

    if process == "qcd":
        obj = np.flatnonzero(status == -23)  # outgoing partons of the hard 2->2 process
        prongs = obj[:, None]
    else:
        res_id = _RESONANCE[process]
        # A particle is copied on (recoil, radiation) if a daughter carries its own id.
        copied = (d1 > offset) & ((pid[d1] == pid) | (pid[d2] == pid))
        obj = np.flatnonzero((np.abs(pid) == res_id) & ~copied)  # decaying (last) copies
        prongs = np.stack([d1[obj], d2[obj]], axis=1)
        if process == "top":
            # t -> W b: keep the quark, replace the W by its own decay quarks.
            is_w = np.abs(pid[prongs]) == 24
            quark = np.where(is_w[:, 0], prongs[:, 1], prongs[:, 0])
            w_sign = np.sign(pid[obj])
            w_last = np.flatnonzero((np.abs(pid) == 24) & ~copied)
            key = event[w_last] * 2 + (pid[w_last] > 0)
            order = np.argsort(key)
            w_of_top = w_last[order][np.searchsorted(key[order], event[obj] * 2 + (w_sign > 0))]
            prongs = np.stack([quark, d1[w_of_top], d2[w_of_top]], axis=1)
        if np.any(np.abs(pid[prongs]) > 5):
            raise RuntimeError(f"{process}: a resonance decay product is not a quark")

    prong_eta = np.full((len(obj), _MAX_PRONGS), np.nan)
    prong_phi = np.full((len(obj), _MAX_PRONGS), np.nan)
    prong_eta[:, : prongs.shape[1]] = eta[prongs]
    prong_phi[:, : prongs.shape[1]] = phi[prongs]
    return _Truth(event[obj], p4[obj], pid[obj], prong_eta, prong_phi)


def _match(
    truth: _Truth, jet_event: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray, r: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each jet: (truth object index, matched flag, largest prong distance).

    A jet is matched to an object if all its prongs lie within ``r``; among matched objects
    (or among all, when none matches) the one with the smallest largest-prong distance wins.
    """
    n_events = int(max(jet_event.max(initial=-1), truth.event.max(initial=-1))) + 1
    per_event = np.bincount(truth.event, minlength=n_events)
    slots = int(per_event.max(initial=0))
    table = np.full((n_events, max(slots, 1)), -1)
    order = np.argsort(truth.event, kind="stable")
    rank = np.arange(len(order)) - np.repeat(np.cumsum(per_event) - per_event, per_event)
    table[truth.event[order], rank] = order

    cand = table[jet_event]  # (n_jets, slots)
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    dr = kin.delta_r(
        truth.prong_eta[safe], truth.prong_phi[safe], jet_eta[:, None, None], jet_phi[:, None, None]
    )
    max_dr = np.max(np.where(np.isnan(dr), -np.inf, dr), axis=2)
    max_dr = np.where(valid, max_dr, np.inf)
    best = np.argmin(max_dr, axis=1)
    best_dr = np.take_along_axis(max_dr, best[:, None], axis=1)[:, 0]
    return np.take_along_axis(cand, best[:, None], axis=1)[:, 0], best_dr < r, best_dr


# ---------------------------------------------------------------------- one worker
def process_key(process: str) -> int:
    """Stable 64-bit integer of a process name (BLAKE2b; not Python's salted ``hash``)."""
    return int.from_bytes(hashlib.blake2b(process.encode(), digest_size=8).digest(), "little")


def worker_seeds(seed: int, process: str, worker: int) -> tuple[int, np.random.SeedSequence]:
    """Pythia ``Random:seed`` (1 ... 899999999) and the numpy seed sequence of one worker.

    Both depend only on (seed, process name, worker index); see the module docstring.
    """
    sequence = np.random.SeedSequence([seed, process_key(process), worker])
    return 1 + int(sequence.generate_state(1)[0]) % (_MAX_SEED - 1), sequence


def _new_pythia(config: GeneratorConfig, pythia_seed: int) -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in config.pythia_lines(pythia_seed):
        if not pythia.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia initialisation failed for process {config.process!r}")
    return pythia


class _Counts(dict):
    """Integer counters that add up across batches and workers."""

    def add(self, key: str, n: int) -> None:
        self[key] = self.get(key, 0) + int(n)


def _process_batch(
    events: ak.Array, config: GeneratorConfig, rng: np.random.Generator, counts: _Counts
) -> tuple[ak.Array, dict[str, np.ndarray]]:
    """Cluster one batch of Pythia events; return selected jets' particles and extras."""
    prt = events["prt"]
    pid = _flat(prt, "id")
    status = _flat(prt, "status")
    p = prt["p"]
    px, py, pz, energy = (_flat(p, c).astype(np.float64) for c in ("px", "py", "pz", "e"))
    n_per_event = ak.to_numpy(ak.num(prt))
    event = np.repeat(np.arange(len(n_per_event)), n_per_event)

    with np.errstate(divide="ignore", invalid="ignore"):
        in_acceptance = np.abs(kin.eta(px, py, pz)) < config.particle_eta_max
    visible = (status > 0) & ~np.isin(np.abs(pid), _NEUTRINOS) & in_acceptance
    pid, px, py, pz, energy, event = (a[visible] for a in (pid, px, py, pz, energy, event))
    charge = charge_from_pid(pid)
    if config.smearing is not None:
        px, py, pz, energy, keep = smear(px, py, pz, energy, pid, charge, config.smearing, rng)
        counts.add("particles before smearing threshold", len(keep))
        counts.add("particles below smearing threshold", np.count_nonzero(~keep))
        pid, px, py, pz, energy, event, charge = (
            a[keep] for a in (pid, px, py, pz, energy, event, charge)
        )

    n_visible = np.bincount(event, minlength=len(n_per_event))
    jets = antikt_event_jets(px, py, pz, energy, n_visible, config.jet_r,
                          _JET_FLOOR * config.pt_min)
    jet_event, constituents = jets.jet_event, jets.constituents
    jet_pt, jet_eta, jet_phi = jets.pt, jets.eta, jets.phi

    counts.add("jets", len(jet_pt))
    low, high, forward = _window_cuts(jet_pt, jet_eta, config)
    for name, cut in zip(_cut_names(config), (low, high, forward), strict=True):
        counts.add(name, np.count_nonzero(cut))
    selected = ~(low | high | forward)

    truth = _truth(prt, config.process)
    obj, matched, max_dr = _match(truth, jet_event, jet_eta, jet_phi, config.truth_match_r)
    obj = np.where(obj >= 0, obj, 0)
    if config.require_truth_match:
        unmatched = selected & ~matched
        counts.add("no truth match", np.count_nonzero(unmatched))
        selected &= matched
        if config.process == "qcd":
            heavy = selected & np.isin(np.abs(truth.pid[obj]), _HEAVY_QUARKS)
            counts.add("heavy-flavour parton", np.count_nonzero(heavy))
            selected &= ~heavy

    chosen = constituents[selected]
    t = truth.p4[obj[selected]]
    extra = {
        "truth_match": matched[selected],
        "genpart_pt": kin.pt(t[:, 0], t[:, 1]).astype(np.float32),
        "genpart_eta": kin.eta(t[:, 0], t[:, 1], t[:, 2]).astype(np.float32),
        "genpart_phi": kin.phi(t[:, 0], t[:, 1]).astype(np.float32),
        "genpart_pid": truth.pid[obj[selected]].astype(np.int32),
        "truth_max_dr": max_dr[selected].astype(np.float32),
    }
    return _jet_particles(px, py, pz, energy, pid, charge, chosen), extra


def _jet_particles(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray,
                   pid: np.ndarray, charge: np.ndarray, chosen: ak.Array) -> ak.Array:
    """Jets x particles records (JetBatch particle fields, float32) of the particles
    ``chosen`` (jets x flat index into the particle arrays [GeV]), pT-descending in each jet;
    impact parameters are zeros (generator level). Shared with :mod:`jetfm.data.hepmc`."""
    flat = ak.to_numpy(ak.flatten(chosen)).astype(np.int64)
    n = ak.to_numpy(ak.num(chosen))
    flags = particle_type_flags(pid[flat], charge[flat])
    zeros = np.zeros(len(flat), dtype=np.float32)
    columns = {
        "px": px[flat].astype(np.float32),
        "py": py[flat].astype(np.float32),
        "pz": pz[flat].astype(np.float32),
        "energy": energy[flat].astype(np.float32),
        "pid": pid[flat].astype(np.int32),
        "charge": charge[flat].astype(np.float32),
        **{name: flags[name] for name in PARTICLE_TYPE_FLAGS},
        **{name: zeros for name in ("d0val", "d0err", "dzval", "dzerr")},
    }
    particles = ak.unflatten(ak.zip(columns), n)
    pt = kin.pt(particles["px"], particles["py"])
    return ak.to_packed(particles[ak.argsort(pt, axis=1, ascending=False, stable=True)])


_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    silence_fastjet_banner()  # the main process shows it; not once more per worker


def _run_worker(
    config: GeneratorConfig, n_jets: int, seed: int, worker: int, bar: tqdm | None = None
) -> tuple[ak.Array, dict[str, np.ndarray], _Counts]:
    """Generate ``n_jets`` selected jets with worker ``worker``'s seeds.

    Raises :class:`SelectionError` after ``config.max_events_without_jet`` events without an
    accepted jet.
    """
    pythia_seed, sequence = worker_seeds(seed, config.process, worker)
    rng = np.random.default_rng(sequence)
    pythia = _new_pythia(config, pythia_seed)
    counts = _Counts()
    parts: list[ak.Array] = []
    extras: list[dict[str, np.ndarray]] = []
    n_have = 0
    events_without_jet = 0
    while n_have < n_jets:
        if events_without_jet >= config.max_events_without_jet:
            report = _jet_report(config, config.tag(seed), counts, n_have)
            raise SelectionError(
                f"{config.process}: no jet passed the selection in {events_without_jet} events "
                f"(max_events_without_jet = {config.max_events_without_jet}; worker {worker} "
                f"had {n_have} of its {n_jets} jets); {report}"
            )
        events = pythia.nextBatch(config.events_per_batch, 10.0)
        counts.add("events", len(events))
        particles, extra = _process_batch(events, config, rng, counts)
        events_without_jet = 0 if len(particles) else events_without_jet + config.events_per_batch
        take = min(len(particles), n_jets - n_have)
        counts.add("beyond requested number", len(particles) - take)
        parts.append(particles[:take])
        extras.append({k: v[:take] for k, v in extra.items()})
        n_have += take
        if bar is not None:
            bar.update(take)
        elif _progress_queue is not None:
            _progress_queue.put(take)
    extra = {k: np.concatenate([e[k] for e in extras]) for k in extras[0]}
    return ak.concatenate(parts), extra, counts


# ---------------------------------------------------------------------- public API
def check_request(n_jets: int, seed: int, workers: int) -> None:
    """``ValueError`` unless ``n_jets`` >= 1, ``seed`` >= 0 and ``workers`` >= 1."""
    if n_jets < 1:
        raise ValueError(f"n_jets must be >= 1, got {n_jets}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def generate(
    config: GeneratorConfig,
    n_jets: int,
    *,
    seed: int = 1,
    workers: int = 1,
    progress: bool = True,
    streams: range | None = None,
) -> tuple[JetBatch, list[SelectionReport]]:
    """Generate ``n_jets`` jets of ``config.process``; identical output for (seed, workers).

    Returns the batch and the selection reports: jets (anti-kt jets above 0.5 pt_min removed
    by the pT/eta cuts, truth matching and the requested count), and where applicable the
    particles removed by the smearing threshold and by ``max_particles``. With ``workers > 1``
    a calling script must guard its entry point (``if __name__ == "__main__":``), as for any
    use of :mod:`multiprocessing` outside the "fork" start method.

    ``streams``: run only these workers (a non-empty range inside ``range(workers)``; default
    all), each with its own seeds and share as in the full run: the result is that run's jets
    of those workers, in order, and reports counting only them. Shards of a batch array
    (:mod:`jetfm.data.shards`) use it; ``ValueError`` for a range outside the workers.
    """
    check_request(n_jets, seed, workers)
    workers = min(workers, n_jets)
    shares = [(k + 1) * n_jets // workers - k * n_jets // workers for k in range(workers)]
    streams = range(workers) if streams is None else streams
    if len(streams) == 0 or streams.step != 1 or not 0 <= streams[0] <= streams[-1] < workers:
        raise ValueError(f"streams must be a non-empty range of consecutive workers inside "
                         f"range({workers}), got {streams}")
    mine = {k: shares[k] for k in streams}
    bar = tqdm(total=sum(mine.values()), unit="jet", desc=f"pythia8 {config.process}",
               disable=not progress)
    with bar:
        if len(mine) == 1:
            results = [_run_worker(config, mine[k], seed, k, bar) for k in mine]
        else:
            results = _run_pool(config, mine, seed, bar)

    particles = ak.concatenate([r[0] for r in results])
    extra = {k: np.concatenate([r[1][k] for r in results]) for k in results[0][1]}
    counts = _Counts()
    for r in results:
        for key, value in r[2].items():
            counts.add(key, value)

    tag = config.tag(seed)
    reports = [_jet_report(config, tag, counts, len(particles))]
    if config.smearing is not None:
        before = counts["particles before smearing threshold"]
        removed = counts["particles below smearing threshold"]
        reports.append(
            SelectionReport(
                f"{tag}: visible particles after smearing",
                before,
                before - removed,
                {f"pT < {config.smearing.pt_threshold:g} GeV": removed},
            )
        )
    label = class_index(PROCESSES[config.process]) if config.labelled else UNLABELLED
    batch = JetBatch(
        particles,
        label=np.full(len(particles), label),
        extra=extra,
        source_files=(tag,),
        source=np.zeros(len(particles), dtype=np.int64),
        entry=np.arange(len(particles)),
    )
    if config.max_particles is not None:
        n_before = int(batch.n_particles.sum())
        batch, dropped = batch.truncate(config.max_particles)
        reports.append(
            SelectionReport(
                f"{tag}: constituents (at most {config.max_particles} per jet)",
                n_before,
                n_before - dropped,
                {f"beyond the {config.max_particles} hardest": dropped},
            )
        )
    return batch, reports


def _window_cuts(jet_pt: np.ndarray, jet_eta: np.ndarray, config: GeneratorConfig
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the jets that fail the pT-low, pT-high and eta cuts (each jet is counted
    under the first cut it fails, in that order: the keys of :func:`_cut_names`)."""
    low = jet_pt < config.pt_min
    high = ~low & (jet_pt > (np.inf if config.pt_max is None else config.pt_max))
    forward = ~low & ~high & (np.abs(jet_eta) > config.eta_max)
    return low, high, forward


def _cut_names(config: GeneratorConfig) -> tuple[str, str, str]:
    """Report keys of the pT-low, pT-high and eta cuts."""
    high = "none" if config.pt_max is None else f"{config.pt_max:g}"
    return f"pT < {config.pt_min:g} GeV", f"pT > {high} GeV", f"|eta| > {config.eta_max:g}"


def _jet_report(config: GeneratorConfig, tag: str, counts: _Counts, n_kept: int) -> SelectionReport:
    reasons = [*_cut_names(config), "no truth match", "heavy-flavour parton"]
    reasons += ["beyond requested number"]
    removed = {key: counts.get(key, 0) for key in reasons}
    name = (
        f"{tag}: anti-kt R={config.jet_r:g} jets with pT > {_JET_FLOOR * config.pt_min:g} GeV "
        f"from {counts.get('events', 0)} events"
    )
    return SelectionReport(name, counts.get("jets", 0), n_kept, removed)


def _run_pool(
    config: GeneratorConfig, shares: dict[int, int], seed: int, bar: tqdm
) -> list[tuple[ak.Array, dict[str, np.ndarray], _Counts]]:
    """One process per worker (``shares``: worker index -> its jets), forked from a clean
    server that has this module loaded."""
    return run_with_progress(__name__, _init_worker,
                             [(_run_worker, (config, n, seed, k)) for k, n in shares.items()],
                             len(shares), bar)


def run_with_progress(module: str, initializer: Any, calls: list[tuple[Any, tuple]],
                      workers: int, bar: tqdm) -> list[Any]:
    """``fn(*args)`` for each of ``calls`` on ``workers`` processes forked from a clean server
    that has ``module`` loaded, results in call order. ``initializer(queue)`` stores the queue
    through which the workers report progress (counts added to ``bar``). Shared by
    :mod:`jetfm.data.pythia` and :mod:`jetfm.data.zjets`."""
    print_fastjet_banner()  # here, once; the workers do not print it
    context = mp.get_context("forkserver")
    context.set_forkserver_preload([module])
    progress_queue = context.Queue()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer,
                             initargs=(progress_queue,)) as pool:
        futures = [pool.submit(fn, *args) for fn, args in calls]
        while not all(f.done() for f in futures):
            try:
                bar.update(progress_queue.get(timeout=0.2))
            except queue.Empty:
                pass
        results = [f.result() for f in futures]
    while not progress_queue.empty():
        bar.update(progress_queue.get())
    return results
