"""Built-in event source: pp -> Z(mu mu) + jets at 13 TeV with Pythia 8 + FastJet anti-kt.

The event-level dataset of the JetGPT multiplicity study (Spinner thesis Sec. 5.1.2,
Eq. 5.9-5.10): leptonically decaying Z bosons with a variable number of jets, anti-kt
R = 0.4 jets with pT > 20 GeV and Delta R_jj > 0.4, muons and jets pT-ordered. The thesis
generated Z + 0 ... 10 jets with MadGraph5_aMC@NLO + Pythia (CKKW merging of up to 10
matrix-element jets, hadronisation, no pile-up); here Pythia 8's parton shower alone makes the
extra jets, with the same staircase pattern: exclusive ratios R_(n+1)/n = sigma_(n+1) /
sigma_n roughly constant (thesis Tab. 5.1: 0.24, 0.23, 0.22, ... 0.19; here 0.207 from n = 1
on with the default Z + jet process, 0.245 falling to ~0.22 for inclusive Z; table below).

Per event (:class:`ZJetsConfig`, defaults in brackets):

* Hard process (``hard_process``, :data:`HARD_PROCESSES`): ``"zjet"`` [default] Z + jet
  (q q~ -> Z g, q g -> Z q) with ``PhaseSpace:pTHatMin`` = ``pthat_min`` [20 GeV], or
  ``"inclusive"`` q q~ -> Z, the shower starting at the kinematic limit with Pythia's
  matrix-element correction of the first emission. Pure Z (``WeakZ0:gmZmode = 2``, no
  photon), Z -> mu+ mu- only. MPI off [``mpi``], hadronisation on [``hadronization``];
  K0S and Lambda stable (``ParticleDecays:tau0Max`` = 10 mm) as in :mod:`jetfm.data.pythia`.
  QED showers off [``qed_shower``]: with them on, photons radiated by the muons (and quarks)
  become massless one-photon "jets" (~1% of the jets with pT > 20 GeV, most within
  Delta R < 0.2 of a muon; jetfm does not dress the muons), which the jets of the study, QCD
  radiation, should not contain. The muons are then the Z decay muons as generated.
* Muons: the hardest mu- and the hardest mu+ among the final-state muons with
  pT >= ``muon_pt_min`` [0] and |eta| <= ``muon_eta_max`` [no cut] (the thesis states no
  muon cut; |eta| < 2.5 would remove about half the events). Events without such a pair are
  counted and skipped. Their mass column is :data:`jetfm.data.events.MUON_MASS`.
* Jets: anti-kt R = ``jet_r`` [0.4] (FastJet, E scheme, :func:`antikt_event_jets`) of all
  visible final-state particles (no neutrinos) with |eta| < ``particle_eta_max`` [5, the
  calorimeter acceptance] except the two selected muons; pT > ``jet_pt_min`` [20 GeV] and
  |eta| < ``jet_eta_max`` [4.5: the R = 0.4 cone lies inside the particle acceptance; ATLAS and
  CMS jets reach |y| < 4.5-4.7]. Delta R_jj > ``dr_jj_min`` [0.4], in (eta, phi): going down
  in pT, a jet closer than ``dr_jj_min`` to a harder kept jet is dropped (anti-kt R = 0.4 jets
  are rarely that close; counted). ``n_jets`` is the number of jets kept; events with more
  than ``max_jets`` [10, the thesis' largest multiplicity] are counted and skipped, so every
  jet of a kept event is stored.

Every cut is counted in ``meta["cuts"]`` (events: processed = kept + each removal; jets:
clustered = kept + each removal), never silent.

Reproducibility and workers: the events come in *streams* of ``events_per_stream`` [20,000]
kept events; stream k draws from ``numpy.random.SeedSequence([seed, blake2b("zjets"), k])``
(:func:`jetfm.data.pythia.worker_seeds`; Pythia ``Random:seed`` from it) and keeps the first
events that pass. ``workers`` processes run the streams in parallel, so the events depend only
on (config, seed), not on ``workers``, and the first n events of a larger request are the
events of a request for n. A stream that processes ``max_events_without_accept`` [10,000]
events without keeping one stops with :class:`jetfm.data.pythia.SelectionError`.

Speed and the study default, measured with the defaults (Pythia 8.317, 2 workers, seed 11,
CPU time of all processes; ``benchmarks/bench_zjets.py`` prints these figures):

============ ============== ============================================= ===================
hard process events/CPU-s   R_(n+1)/n, n = 0 ... 6 (+- stat.)             events for 200 7-jet
============ ============== ============================================= ===================
zjet         1,260          2.87, .207, .207, .214, .210, .199, .204(42)  ~4.1M (27 min, 2 cores)
inclusive    1,640          .245, .240, .222, .223, .228, .205, .194(47)  ~9M (46 min, 2 cores)
============ ============== ============================================= ===================

(zjet: 600k events, R_(2/1) ... R_(6/5) = 0.2069 +- 0.0007 with chi2 = 3.4 for 4 dof; ~4M
events also give ~40 8-jet events. inclusive: 1M events.) Z + jet is the default: it needs
~1.7x less time per 7-jet event and its ratios are constant from n = 1 on, but its n = 0 bin
is sculpted by the pTHat cut (R_(1/0) ~ 2.9: 0-jet events are those whose hard jet fell below
20 GeV or outside |eta| < 4.5). The study caps n < 3 to the 3-jet count anyway
(:func:`jetfm.data.events.cap_low_multiplicities`). ``hard_process="inclusive"`` gives the
thesis-like pattern from n = 0 on (ratios falling slowly from 0.245 to ~0.22, as the
thesis' Tab. 5.1: 0.24, 0.23, 0.22, ...). Without hadronisation (``hadronization=False``)
Pythia runs ~1.6x faster, but one-parton jets are massless (log m undefined).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import awkward as ak
import numpy as np
from tqdm.auto import tqdm

from jetfm._warnings import silence_fastjet_banner
from jetfm.checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Rule, check_fields, check_flag
from jetfm.data.batch import SelectionReport
from jetfm.data.events import MUON_MASS, Events
from jetfm.data.pythia import (
    _NEUTRINOS,
    SelectionError,
    _Counts,
    _flat,
    check_request,
    run_with_progress,
    worker_seeds,
)
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import antikt_event_jets

PROCESS = "zjets"  # the name the random streams derive from
SEEDING = "SeedSequence([seed, blake2b('zjets'), stream])"
#: Pythia settings of each hard process (the rest: :meth:`ZJetsConfig.pythia_lines`).
HARD_PROCESSES: dict[str, tuple[str, ...]] = {
    "zjet": ("WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on"),
    "inclusive": ("WeakSingleBoson:ffbar2gmZ = on",),
}
DEFAULT_PTHAT_MIN = 20.0  # GeV, "zjet": the jet pT cut (sculpts n <= 1 only; module docstring)
_Z_TO_MUMU = ("WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 13")
_NO_QED_SHOWER = ("TimeShower:QEDshowerByQ = off", "TimeShower:QEDshowerByL = off",
                  "SpaceShower:QEDshowerByQ = off", "SpaceShower:QEDshowerByL = off")
_MUON = 13


@dataclass
class ZJetsConfig:
    """What to generate (module docstring); momenta in GeV, ``ValueError`` naming the field.

    ``pthat_min``: ``PhaseSpace:pTHatMin`` of ``"zjet"`` (None: :data:`DEFAULT_PTHAT_MIN`);
    must stay None for ``"inclusive"`` (a 2 -> 1 process has no pTHat). ``muon_eta_max``:
    None for no cut. ``events_per_batch``: events per Pythia ``nextBatch`` call (memory, not
    the events). ``events_per_stream``: kept events per random stream (part of what the events
    are, with the seed). ``pythia_settings``: extra ``readString`` lines, applied last.
    """

    hard_process: str = "zjet"
    pthat_min: float | None = None
    sqrt_s: float = 13000.0
    jet_r: float = 0.4
    jet_pt_min: float = 20.0
    jet_eta_max: float = 4.5
    dr_jj_min: float = 0.4
    particle_eta_max: float = 5.0
    muon_pt_min: float = 0.0
    muon_eta_max: float | None = None
    max_jets: int = 10
    mpi: bool = False
    hadronization: bool = True
    qed_shower: bool = False
    events_per_batch: int = 200
    events_per_stream: int = 20_000
    max_events_without_accept: int = 10_000
    pythia_settings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.hard_process not in HARD_PROCESSES:
            raise ValueError(f"hard_process: {self.hard_process!r}; choose from "
                             f"{list(HARD_PROCESSES)}")
        check_fields(self, {
            **dict.fromkeys(("sqrt_s", "jet_r", "jet_pt_min", "jet_eta_max",
                             "particle_eta_max"), POSITIVE),
            "dr_jj_min": NON_NEGATIVE, "muon_pt_min": NON_NEGATIVE,
            "pthat_min": Rule(float, low=0, low_open=True, optional=True),
            "muon_eta_max": Rule(float, low=0, low_open=True, optional=True),
            "max_jets": Rule(int, low=0),
            **dict.fromkeys(("events_per_batch", "events_per_stream",
                             "max_events_without_accept"), POSITIVE_INT),
        })
        self.mpi = check_flag("mpi", self.mpi)
        self.hadronization = check_flag("hadronization", self.hadronization)
        self.qed_shower = check_flag("qed_shower", self.qed_shower)
        if self.hard_process == "inclusive" and self.pthat_min is not None:
            raise ValueError("pthat_min: the inclusive hard process (q q~ -> Z) has no pTHat; "
                             "leave it None or use hard_process 'zjet'")
        if 2 * self.jet_pt_min >= self.sqrt_s:
            raise ValueError(f"jet_pt_min ({self.jet_pt_min} GeV) is beyond the kinematic "
                             f"limit sqrt_s / 2 = {self.sqrt_s / 2:g} GeV")
        if not isinstance(self.pythia_settings, (list, tuple)) or not all(
                isinstance(line, str) for line in self.pythia_settings):
            raise ValueError(f"pythia_settings: expected a list of setting lines, got "
                             f"{self.pythia_settings!r}")
        self.pythia_settings = tuple(self.pythia_settings)

    def pythia_lines(self, pythia_seed: int) -> list[str]:
        """All Pythia ``readString`` settings for this configuration and a Pythia seed."""
        pthat = []
        if self.hard_process == "zjet":
            value = DEFAULT_PTHAT_MIN if self.pthat_min is None else self.pthat_min
            pthat = [f"PhaseSpace:pTHatMin = {value}"]
        return [
            f"Beams:eCM = {self.sqrt_s}",
            *HARD_PROCESSES[self.hard_process],
            *_Z_TO_MUMU,
            *pthat,
            f"PartonLevel:MPI = {'on' if self.mpi else 'off'}",
            f"HadronLevel:all = {'on' if self.hadronization else 'off'}",
            *(() if self.qed_shower else _NO_QED_SHOWER),
            "ParticleDecays:limitTau0 = on",
            "ParticleDecays:tau0Max = 10",
            "Random:setSeed = on",
            f"Random:seed = {pythia_seed}",
            "Print:quiet = on",
            *self.pythia_settings,
        ]

    def record(self) -> dict[str, Any]:
        """The configuration as JSON-able values (tuples as lists)."""
        record = asdict(self)
        record["pythia_settings"] = list(self.pythia_settings)
        return record


# ---------------------------------------------------------------------- cut names
def _event_cuts(config: ZJetsConfig) -> tuple[str, str, str]:
    """Report keys of the event cuts: muon pair, jet multiplicity, requested number."""
    where = []
    if config.muon_pt_min > 0:
        where.append(f"pT >= {config.muon_pt_min:g} GeV")
    if config.muon_eta_max is not None:
        where.append(f"|eta| <= {config.muon_eta_max:g}")
    pair = "no mu+ mu- pair" + (f" with {', '.join(where)}" if where else "")
    return pair, f"more than {config.max_jets} jets", "beyond requested number"


def _jet_cuts(config: ZJetsConfig) -> tuple[str, str, str]:
    """Report keys of the jet cuts: |eta|, Delta R_jj, jets of skipped events."""
    return (f"|eta| >= {config.jet_eta_max:g}",
            f"Delta R < {config.dr_jj_min:g} to a harder jet", "in skipped events")


# ---------------------------------------------------------------------- one batch
def _hardest(candidate: np.ndarray, event: np.ndarray, pt: np.ndarray,
             n_events: int) -> np.ndarray:
    """Per event, the flat index of the highest-pT ``candidate`` particle (-1: none)."""
    index = np.flatnonzero(candidate)
    index = index[np.lexsort((-pt[index], event[index]))]
    events, first = np.unique(event[index], return_index=True)
    hardest = np.full(n_events, -1, dtype=np.int64)
    hardest[events] = index[first]
    return hardest


def _phi(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Azimuth in [-pi, pi) (kinematics' (-pi, pi] with +pi mapped to -pi)."""
    phi = kin.phi(px, py)
    return np.where(phi >= math.pi, -math.pi, phi)


def _isolate(eta: np.ndarray, phi: np.ndarray, rank: np.ndarray, event: np.ndarray,
             n_events: int, dr_min: float) -> np.ndarray:
    """Keep mask of jets (pT-descending within each event, ``rank`` 0, 1, ...): going down in
    pT, a jet within ``dr_min`` (eta, phi) of a harder kept jet is dropped."""
    if len(eta) == 0 or dr_min == 0:
        return np.ones(len(eta), dtype=bool)
    width = int(rank.max()) + 1
    table = np.full((n_events, width), -1)
    table[event, rank] = np.arange(len(eta))
    kept = table >= 0
    for i in range(1, width):
        jet = table[:, i]
        has = jet >= 0
        harder = table[has, :i]
        dr = kin.delta_r(eta[jet[has], None], phi[jet[has], None], eta[harder], phi[harder])
        close = np.any(kept[has, :i] & (dr < dr_min), axis=1)
        kept[np.flatnonzero(has)[close], i] = False
    keep = np.zeros(len(eta), dtype=bool)
    keep[table[kept]] = True
    return keep


def _process_batch(events: ak.Array, config: ZJetsConfig, counts: _Counts
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Muons and jets of one batch of Pythia events: (muons (n, 2, 4), jets (n, max_jets, 4),
    n_jets (n,)) of the events that pass, in order; the cuts are added to ``counts``."""
    prt = events["prt"]
    n_events = len(prt)
    pid = _flat(prt, "id")
    status = _flat(prt, "status")
    p = prt["p"]
    px, py, pz, energy = (_flat(p, c).astype(np.float64) for c in ("px", "py", "pz", "e"))
    event = np.repeat(np.arange(n_events), ak.to_numpy(ak.num(prt)))
    pt = kin.pt(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = kin.eta(px, py, pz)
    final = status > 0

    muon = final & (np.abs(pid) == _MUON) & (pt >= config.muon_pt_min)
    if config.muon_eta_max is not None:
        muon &= np.abs(eta) <= config.muon_eta_max
    mu_minus = _hardest(muon & (pid == _MUON), event, pt, n_events)
    mu_plus = _hardest(muon & (pid == -_MUON), event, pt, n_events)
    has_pair = (mu_minus >= 0) & (mu_plus >= 0)
    no_pair, too_many, _ = _event_cuts(config)
    counts.add("events", n_events)
    counts.add(no_pair, np.count_nonzero(~has_pair))

    visible = final & ~np.isin(np.abs(pid), _NEUTRINOS) & (np.abs(eta) < config.particle_eta_max)
    visible &= has_pair[event]
    visible[mu_minus[has_pair]] = False
    visible[mu_plus[has_pair]] = False
    v = np.flatnonzero(visible)
    jets = antikt_event_jets(px[v], py[v], pz[v], energy[v],
                             np.bincount(event[v], minlength=n_events), config.jet_r,
                             config.jet_pt_min)
    owner = np.repeat(np.arange(len(jets.px)), ak.to_numpy(ak.num(jets.constituents)))
    flat = ak.to_numpy(ak.flatten(jets.constituents)).astype(np.int64)
    jet_e = np.bincount(owner, energy[v][flat], minlength=len(jets.px))
    jet_pt, jet_eta, jet_phi = jets.pt, jets.eta, _phi(jets.px, jets.py)
    jet_m = np.sqrt(np.maximum(kin.mass2(jet_e, jets.px, jets.py, jets.pz), 0.0))
    order = np.lexsort((-jet_pt, jets.jet_event))  # pT-descending per event, our own pT
    jet_event = jets.jet_event[order]
    jet_p = np.stack([jet_pt, jet_eta, jet_phi, jet_m], axis=1)[order]

    counts.add("jets", len(jet_p))
    forward_key, close_key, skipped_key = _jet_cuts(config)
    central = np.abs(jet_p[:, 1]) < config.jet_eta_max
    counts.add(forward_key, np.count_nonzero(~central))
    jet_p, jet_event = jet_p[central], jet_event[central]
    rank = _rank(jet_event)
    isolated = _isolate(jet_p[:, 1], jet_p[:, 2], rank, jet_event, n_events,
                        config.dr_jj_min)
    counts.add(close_key, np.count_nonzero(~isolated))
    jet_p, jet_event = jet_p[isolated], jet_event[isolated]

    n_jets = np.bincount(jet_event, minlength=n_events)
    many = has_pair & (n_jets > config.max_jets)
    counts.add(too_many, np.count_nonzero(many))
    accept = has_pair & ~many
    in_accepted = accept[jet_event]
    counts.add(skipped_key, np.count_nonzero(~in_accepted))
    jet_p, jet_event = jet_p[in_accepted], jet_event[in_accepted]

    index = np.full(n_events, -1)
    index[accept] = np.arange(np.count_nonzero(accept))
    out_jets = np.zeros((np.count_nonzero(accept), config.max_jets, 4))
    out_jets[index[jet_event], _rank(jet_event)] = jet_p
    pair = np.stack([mu_minus[accept], mu_plus[accept]], axis=1)
    pair = np.take_along_axis(pair, np.argsort(-pt[pair], axis=1, kind="stable"), axis=1)
    muons = np.stack([pt[pair], eta[pair], _phi(px[pair], py[pair]),
                      np.full(pair.shape, MUON_MASS)], axis=-1)
    return muons, out_jets, n_jets[accept].astype(np.int64)


def _rank(event: np.ndarray) -> np.ndarray:
    """Position of each entry within its event (entries grouped by event, in order)."""
    if len(event) == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.r_[0, np.flatnonzero(np.diff(event)) + 1]
    length = np.diff(np.r_[start, len(event)])
    return np.arange(len(event)) - np.repeat(start, length)


# ---------------------------------------------------------------------- one stream
_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    silence_fastjet_banner()  # the main process shows it; not once more per worker


def _new_pythia(config: ZJetsConfig, pythia_seed: int) -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in config.pythia_lines(pythia_seed):
        if not pythia.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia initialisation failed for Z -> mu mu + jets "
                           f"({config.hard_process})")
    return pythia


def _run_stream(config: ZJetsConfig, n_events: int, seed: int, stream: int,
                bar: tqdm | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Counts]:
    """The first ``n_events`` events of stream ``stream`` that pass, and the stream's counts.

    Raises :class:`SelectionError` after ``config.max_events_without_accept`` events without
    an accepted one."""
    pythia = _new_pythia(config, worker_seeds(seed, PROCESS, stream)[0])
    counts = _Counts()
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_have = since_accept = 0
    while n_have < n_events:
        if since_accept >= config.max_events_without_accept:
            raise SelectionError(
                f"zjets: no event passed the selection in {since_accept} events "
                f"(max_events_without_accept = {config.max_events_without_accept}; stream "
                f"{stream} had {n_have} of its {n_events} events); counts {dict(counts)}")
        batch = pythia.nextBatch(config.events_per_batch, 10.0)
        muons, jets, n_jets = _process_batch(batch, config, counts)
        since_accept = 0 if len(n_jets) else since_accept + len(batch)
        take = min(len(n_jets), n_events - n_have)
        counts.add(_event_cuts(config)[2], len(n_jets) - take)
        counts.add(_jet_cuts(config)[2], int(n_jets[take:].sum()))
        parts.append((muons[:take], jets[:take], n_jets[:take]))
        n_have += take
        if bar is not None:
            bar.update(take)
        elif _progress_queue is not None:
            _progress_queue.put(take)
    muons, jets, n_jets = (np.concatenate([part[i] for part in parts]) for i in range(3))
    return muons, jets, n_jets, counts


def _run_pool(config: ZJetsConfig, shares: list[int], seed: int, workers: int, bar: tqdm
              ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, _Counts]]:
    """The streams on ``workers`` processes forked from a clean server (as
    :func:`jetfm.data.pythia.run_with_progress`), results in stream order."""
    return run_with_progress(__name__, _init_worker,
                             [(_run_stream, (config, n, seed, k)) for k, n in enumerate(shares)],
                             workers, bar)


# ---------------------------------------------------------------------- public API
def generate_zjets(n_events: int, config: ZJetsConfig | None = None, seed: int = 1,
                   workers: int = 1, *, progress: bool = True) -> Events:
    """``n_events`` Z -> mu mu + jets events (module docstring); the same for any ``workers``.

    ``meta``: ``generator`` (``pythia8mc`` version), ``config`` (:meth:`ZJetsConfig.record`),
    ``seed``, ``seeding``, ``workers``, ``n_events``, ``seconds``, ``cuts`` (``events``:
    processed, kept and removed per cut; ``jets``: anti-kt jets above ``jet_pt_min`` clustered
    in events with a muon pair, kept and removed per cut). Jets: J = ``config.max_jets`` slots.
    ``ValueError`` for ``n_events < 1``, ``seed < 0`` or ``workers < 1``;
    :class:`SelectionError` when nothing passes. With ``workers > 1`` a calling script must
    guard its entry point (``if __name__ == "__main__":``)."""
    import pythia8mc

    config = ZJetsConfig() if config is None else config
    check_request(n_events, seed, workers)
    per = config.events_per_stream
    shares = [min(per, n_events - k * per) for k in range(math.ceil(n_events / per))]
    workers = min(workers, len(shares))
    start = time.perf_counter()
    bar = tqdm(total=n_events, unit="event", desc="pythia8 Z->mumu+jets", disable=not progress)
    with bar:
        if workers == 1:
            results = [_run_stream(config, n, seed, k, bar) for k, n in enumerate(shares)]
        else:
            results = _run_pool(config, shares, seed, workers, bar)
    seconds = time.perf_counter() - start
    counts = _Counts()
    for result in results:
        for key, value in result[3].items():
            counts.add(key, value)
    n_jets = np.concatenate([r[2] for r in results])
    event_cuts, jet_cuts = _event_cuts(config), _jet_cuts(config)
    cuts = {
        "events": {"processed": counts.get("events", 0), "kept": len(n_jets),
                   "removed": {key: counts.get(key, 0) for key in event_cuts}},
        "jets": {"clustered": counts.get("jets", 0), "kept": int(n_jets.sum()),
                 "removed": {key: counts.get(key, 0) for key in jet_cuts}},
    }
    meta = {
        "source": "jetfm.data.zjets",
        "generator": f"pythia8mc {getattr(pythia8mc, '__version__', 'unknown')}",
        "config": config.record(), "seed": seed, "seeding": SEEDING, "workers": workers,
        "n_events": n_events, "seconds": round(seconds, 2), "cuts": cuts,
    }
    return Events(np.concatenate([r[0] for r in results]),
                  np.concatenate([r[1] for r in results]), n_jets, meta)


def cut_reports(meta: dict[str, Any]) -> list[SelectionReport]:
    """What the cuts removed (events, jets), from the ``meta`` of :func:`generate_zjets`."""
    cuts = meta["cuts"]
    config = meta["config"]
    events, jets = cuts["events"], cuts["jets"]
    return [
        SelectionReport(f"events (Z -> mu mu, {config['hard_process']})", events["processed"],
                        events["kept"], dict(events["removed"])),
        SelectionReport(f"anti-kt R={config['jet_r']:g} jets with pT > "
                        f"{config['jet_pt_min']:g} GeV", jets["clustered"], jets["kept"],
                        dict(jets["removed"])),
    ]
