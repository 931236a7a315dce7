"""Jets from HepMC event files (``jetfm cluster``): visible final state -> anti-kt jets.

Users who generate events themselves (MadGraph + Pythia, Herwig, Sherpa, ...) bring HepMC
files. They are read with ``pyhepmc`` (the HepMC3 library's Python bindings): HepMC3 ASCII
(``HepMC::Asciiv3``, HepMC3's default) and HepMC2 ``IO_GenEvent`` files, plain or compressed
(``.gz``, ``.bz2``, ``.xz``, ``.zst``). The format is taken from the file's header, never
guessed: pyhepmc's own detection reads any unknown text as HEPEVT, so a wrong file would give
nonsense events instead of an error. Les Houches (LHE) files are refused: they hold
parton-level events (before shower and hadronisation), whose "jets" would be single partons;
shower them (Pythia, Herwig) and write HepMC.

Particles (:func:`visible_final_state`): status 1 (HepMC's undecayed final-state particles),
visible (:func:`invisible`: neutrinos, as ``jetfm generate``, plus neutral BSM particles a
detector does not see) and within |eta| < ``particle_eta_max`` (default 5, the calorimeter
acceptance of :class:`jetfm.data.pythia.GeneratorConfig`). Which hadrons are stable (K0S,
Lambda, ...) is the generator's choice, recorded in the status codes. Momenta are converted to
GeV: a file in MeV (``U MEV ...``, ``GenEvent.momentum_unit``) is divided by 1000. A HepMC2
file without a units line is read in GeV (HepMC3's default).

Jets (:func:`cluster_events`) are made as in :mod:`jetfm.data.pythia` (``jetfm generate``):
anti-kt (Cacciari, Salam, Soyez, arXiv:0802.1189), E-scheme, radius ``jet_r`` in (y, phi),
with FastJet (:func:`jetfm.physics.clustering.jet_definition`); jets above 0.5 pt_min are
counted, then the cuts pT >= pt_min, pT <= pt_max, |eta| <= eta_max remove jets and are
counted under the same names as ``jetfm generate``'s report. The defaults are
:class:`~jetfm.data.pythia.GeneratorConfig`'s: the JetClass selection (Qu et al.,
arXiv:2202.03772): R = 0.8, 500 < pT < 1000 GeV, |eta| < 2. Jets of an event are ordered by
pT; ``jets_per_event`` keeps the hardest that pass the cuts, ``n_jets`` stops reading once that
many jets are kept (both counted). Particles carry the fields of generated jets:
``px, py, pz, energy`` [GeV] (float32, pT-ordered), ``pid``, ``charge`` and the JetClass type
flags from the PDG id (:mod:`jetfm.data.pid`) and impact parameters ``d0val, d0err, dzval,
dzerr`` = 0 (generator level: no tracking). Per jet, ``extra`` holds ``event_number`` (the
HepMC event number) and, when every event carries weights, ``event_weight`` (the first, nominal
weight: MadGraph / NLO samples are weighted, some negatively). ``entry`` is the event's
0-based position in the file.

Bad input raises :class:`HepMCError` (a ``ValueError``) naming the file and, where one is at
fault, the event (``event #k``, counted from 1 in the file, and its HepMC number): an empty or
non-HepMC file, an event HepMC3 cannot parse (a truncated or damaged file; HepMC3's own
diagnostic, which its C++ reader prints on stdout, is captured and quoted), a file that ends
without HepMC's end-of-listing line (cut at an event boundary, or still being written), no
events, a status-1 particle with a non-finite momentum or an unknown PDG id, no visible
particle at all, no jet passing the cuts. A missing file is a ``FileNotFoundError``.
"""

from __future__ import annotations

import bz2
import ctypes
import gzip
import lzma
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import awkward as ak
import numpy as np
from particle.pdgid import PDGID
from tqdm.auto import tqdm

from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.data.classes import CLASSES, UNLABELLED
from jetfm.data.pid import charge_from_pid
from jetfm.data.pythia import (
    _JET_FLOOR,
    _NEUTRINOS,
    GeneratorConfig,
    _Counts,
    _cut_names,
    _jet_particles,
    _window_cuts,
)
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import antikt_event_jets, jet_definition

# header marker -> (format name, end-of-listing line HepMC writes when it closes the file)
FORMATS: dict[bytes, tuple[str, str]] = {
    b"HepMC::Asciiv3": ("HepMC3", "HepMC::Asciiv3-END_EVENT_LISTING"),
    b"HepMC::IO_GenEvent": ("HepMC2", "HepMC::IO_GenEvent-END_EVENT_LISTING"),
}
_HEADER_BYTES = 512
_QUOTE = 200  # characters of HepMC3's own diagnostic quoted in an error
_GLUON, _PHOTON = 21, 22
_HIDDEN_VALLEY = 49  # PDG numbering scheme: hidden-valley particles are 49xxxxx (n=4, nr=9)


class HepMCError(JetDataError):
    """A HepMC file that cannot give jets; the message names the file (and the event)."""


@dataclass
class ClusterConfig:
    """How events become jets. Momenta in GeV; defaults are ``jetfm generate``'s
    (:class:`~jetfm.data.pythia.GeneratorConfig`, the JetClass selection).

    ``jet_r``: anti-kt radius. ``pt_min`` / ``pt_max`` (``None``: no upper cut) and
    ``eta_max``: jet cuts. ``particle_eta_max``: particle acceptance |eta|. ``jets_per_event``:
    keep at most this many jets per event, the hardest passing the cuts (``None``: all).
    ``n_jets``: stop after this many jets (``None``: read the whole file). ``label``: class index
    of every jet (:data:`jetfm.data.classes.CLASSES`; -1 unlabelled). ``events_per_batch``:
    events clustered together (memory, not the result). ``ValueError`` on a bad value.
    """

    jet_r: float = GeneratorConfig.jet_r
    pt_min: float = GeneratorConfig.pt_min
    pt_max: float | None = GeneratorConfig.pt_max
    eta_max: float = GeneratorConfig.eta_max
    particle_eta_max: float = GeneratorConfig.particle_eta_max
    jets_per_event: int | None = None
    n_jets: int | None = None
    label: int = UNLABELLED
    events_per_batch: int = GeneratorConfig.events_per_batch

    def __post_init__(self) -> None:
        """Check every value (also after :func:`dataclasses.replace`); ``ValueError``."""
        positive = {"jet_r": self.jet_r, "eta_max": self.eta_max,
                    "particle_eta_max": self.particle_eta_max}
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not (np.isfinite(self.pt_min) and self.pt_min >= 0):
            raise ValueError(f"pt_min must be a number >= 0, got {self.pt_min}")
        if self.pt_max is not None and not (np.isfinite(self.pt_max)
                                            and self.pt_max > self.pt_min):
            raise ValueError(f"pt_max ({self.pt_max}) must exceed pt_min ({self.pt_min}); "
                             "raise pt_max (--pt-max) together with pt_min")
        for name in ("jets_per_event", "n_jets", "events_per_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not UNLABELLED <= self.label < len(CLASSES):
            raise ValueError(f"label must lie in [-1, {len(CLASSES) - 1}], got {self.label}")
        jet_definition("antikt", self.jet_r)  # ValueError for a radius FastJet refuses


# ---------------------------------------------------------------------- particles
@lru_cache(maxsize=4096)
def _invisible(pid: int) -> bool | None:
    """See :func:`invisible`; ``None`` for an id that is not a valid PDG id."""
    if abs(pid) in _NEUTRINOS or abs(pid) // 100_000 == _HIDDEN_VALLEY:
        return True
    code = PDGID(pid)
    if not code.is_valid or code.three_charge is None:
        return None
    if pid in (_GLUON, _PHOTON) or code.is_hadron:
        return False
    return code.three_charge == 0


def invisible(pid: np.ndarray, origin: str = "<memory>") -> np.ndarray:
    """True for particles a detector does not see, for an integer array of PDG ids.

    Neutrinos (|pid| 12, 14, 16: the rule of ``jetfm generate``), and beyond the Standard
    Model every neutral particle that is not a hadron, photon or gluon (Rivet's
    ``VisibleFinalState``: neutralinos 1000022, gravitinos 1000039, sneutrinos, heavy
    neutral leptons, ...) plus hidden-valley particles (49xxxxx). For Standard Model final
    states this is exactly the neutrino rule. Raises :class:`HepMCError` naming ``origin``
    for an id that is not a valid PDG id.
    """
    pid = np.asarray(pid, dtype=np.int64)
    unique, inverse = np.unique(pid, return_inverse=True)
    table = [_invisible(int(p)) for p in unique]
    bad = [int(p) for p, t in zip(unique, table, strict=True) if t is None]
    if bad:
        raise HepMCError(f"{origin}: final-state particle(s) with PDG id(s) {bad}, not valid "
                         "PDG ids (no charge known): cannot tell visible from invisible")
    return np.array(table, dtype=bool)[inverse].reshape(pid.shape)


def visible_final_state(
    pid: np.ndarray, status: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
    particle_eta_max: float = GeneratorConfig.particle_eta_max, origin: str = "<memory>",
) -> tuple[np.ndarray, int, int]:
    """(mask, n_invisible, n_outside): the visible final-state particles of an event record.

    Final state: HepMC status 1. Visible: not :func:`invisible`. Acceptance: |eta| <
    ``particle_eta_max`` (particles along the beam, pT = 0, are outside). Arrays (n,) of one
    or more events; momenta in any one unit. The counts are of status-1 particles removed as
    invisible and, of the visible ones, outside the acceptance.
    """
    final = np.asarray(status) == 1
    hidden = np.zeros(len(final), dtype=bool)
    hidden[final] = invisible(np.asarray(pid)[final], origin)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = np.abs(kin.eta(px, py, pz)) < particle_eta_max
    mask = final & ~hidden & inside
    return mask, int(np.count_nonzero(hidden)), int(np.count_nonzero(final & ~hidden & ~inside))


# ---------------------------------------------------------------------- clustering
def cluster_events(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, pid: np.ndarray,
    n_per_event: np.ndarray, config: ClusterConfig, counts: dict[str, int] | None = None,
) -> tuple[ak.Array, np.ndarray]:
    """Anti-kt jets of a batch of events passing ``config``'s cuts: (particles, jet_event).

    Inputs: the visible particles of consecutive events, flat (n,) arrays, momenta [GeV]
    (float64), ``n_per_event`` (n_events,) their counts. Jets above 0.5 ``pt_min`` are
    counted (``counts["jets"]``), the pT and |eta| cuts (E-scheme jet momentum) remove jets
    under ``jetfm generate``'s names, ``jets_per_event`` the softer ones ("beyond the K hardest
    of an event"). Returns the kept jets' particles (jets x particles records, the fields of
    generated jets, pT-ordered) and (n_jets,) the event index of each jet in the batch; jets
    are in event order, by decreasing pT within an event.
    """
    counts = _Counts() if counts is None else counts
    n_per_event = np.asarray(n_per_event, dtype=np.int64)
    low_name, high_name, eta_name = _cut_names(config)
    per_event_name = f"beyond the {config.jets_per_event} hardest of an event"
    for name in ("jets", low_name, high_name, eta_name, per_event_name):
        counts[name] = counts.get(name, 0)
    if len(px) == 0:
        none = ak.unflatten(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        return _particles(px, py, pz, energy, pid, none), np.zeros(0, dtype=np.int64)
    jets = antikt_event_jets(px, py, pz, energy, n_per_event, config.jet_r,
                          _JET_FLOOR * config.pt_min)
    jet_event, constituents, jet_pt = jets.jet_event, jets.constituents, jets.pt
    counts["jets"] += len(jet_pt)
    low, high, forward = _window_cuts(jet_pt, jets.eta, config)
    for name, cut in ((low_name, low), (high_name, high), (eta_name, forward)):
        counts[name] += int(np.count_nonzero(cut))
    selected = np.flatnonzero(~(low | high | forward))
    selected = selected[np.lexsort((-jet_pt[selected], jet_event[selected]))]
    if config.jets_per_event is not None and len(selected):
        ev = jet_event[selected]
        starts = np.flatnonzero(np.r_[True, ev[1:] != ev[:-1]])
        rank = np.arange(len(ev)) - np.repeat(starts, np.diff(np.r_[starts, len(ev)]))
        keep = rank < config.jets_per_event
        counts[per_event_name] += int(np.count_nonzero(~keep))
        selected = selected[keep]
    return _particles(px, py, pz, energy, pid, constituents[selected]), jet_event[selected]


def _particles(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray,
               pid: np.ndarray, chosen: ak.Array) -> ak.Array:
    """Jets x particles records of the particles ``chosen`` (jets x flat index), pT-ordered
    (charges from the PDG ids)."""
    return _jet_particles(px, py, pz, energy, pid, charge_from_pid(pid), chosen)


# ---------------------------------------------------------------------- reading
@dataclass
class HepMCEvent:
    """One event of a file: ``position`` (0-based in the file), HepMC ``number``, nominal
    ``weight`` (None without weights), ``pid`` and ``status`` (n,), ``p4`` (n, 4) px, py, pz,
    E [GeV] float64 of all n particles of the record."""

    position: int
    number: int
    weight: float | None
    pid: np.ndarray
    status: np.ndarray
    p4: np.ndarray

    def where(self, path: str | Path) -> str:
        """``FILE: event #k (number N)`` for messages (k counted from 1)."""
        return f"{path}: event #{self.position + 1} (event number {self.number})"


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return lambda: gzip.open(path, "rb")
    if suffix == ".bz2":
        return lambda: bz2.open(path, "rb")
    if suffix == ".xz":
        return lambda: lzma.open(path, "rb")
    if suffix in (".zst", ".zstd"):
        from backports import zstd  # pyhepmc's dependency for zstd on Python < 3.14

        return lambda: zstd.open(path, "rb")
    return lambda: open(path, "rb")


def detect_format(path: str | Path) -> tuple[str, str]:
    """(format, end-of-listing line) of a HepMC file from its header: ``"HepMC3"`` or
    ``"HepMC2"``. Raises ``FileNotFoundError`` for a missing file, :class:`HepMCError` naming
    the file for an empty, undecompressable, LHE or other non-HepMC file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such HepMC file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a HepMC event file")
    if path.stat().st_size == 0:
        raise HepMCError(f"{path}: empty file (0 bytes); expected a HepMC3 event file")
    try:
        with _opener(path)() as f:
            header = f.read(_HEADER_BYTES)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as err:
        raise HepMCError(f"{path}: cannot be decompressed as {path.suffix} "
                         f"({type(err).__name__}: {err})") from err
    for marker, found in FORMATS.items():
        if marker in header:
            return found
    if b"<LesHouchesEvents" in header:
        raise HepMCError(
            f"{path}: a Les Houches (LHE) file: parton-level events, before shower and "
            "hadronisation, do not give jets with constituents; shower them (Pythia, Herwig) "
            "and write HepMC3")
    first = header.split(b"\n", 1)[0][:60].decode("utf-8", errors="replace")
    raise HepMCError(
        f"{path}: not a HepMC event file: no HepMC3 ('HepMC::Asciiv3') or HepMC2 "
        f"('HepMC::IO_GenEvent') header (first line: {first!r})")


def _ends_with(path: Path, footer: str, n_bytes: int = 256) -> bool:
    """Whether the last ``n_bytes`` of the (decompressed) file hold ``footer``. Plain files are
    read from the end; compressed ones are streamed through (only asked when HepMC3 met the
    end of the file right after an event, i.e. the line may be missing)."""
    with _opener(path)() as f:
        if path.suffix.lower() in (".gz", ".bz2", ".xz", ".zst", ".zstd"):
            tail = b""
            while chunk := f.read(1 << 20):
                tail = (tail + chunk)[-n_bytes:]
        else:
            f.seek(max(path.stat().st_size - n_bytes, 0))
            tail = f.read()
    return footer.encode() in tail


@lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL(None)
    except OSError:  # not POSIX: no C library to flush
        return None


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (C++ ``std::cout`` writes through them)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "fflush"):
        libc.fflush(None)


class _StdoutCatcher:
    """Routes file descriptor 1 to a temporary file while :meth:`catching` runs.

    HepMC3's C++ readers print parse diagnostics ("316 vs 770 expected", "Parsing failed at
    line: ...") on stdout whatever ``pyhepmc.Setup`` says; they are caught to be quoted in the
    error instead. :meth:`take` returns (and clears) what was caught.
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryFile()

    def close(self) -> None:
        self._tmp.close()

    @contextmanager
    def catching(self) -> Iterator[None]:
        try:
            saved = os.dup(1)
        except OSError:  # no stdout at all: nothing to catch
            yield
            return
        sys.stdout.flush()
        _flush_c_stdio()
        os.dup2(self._tmp.fileno(), 1)
        try:
            yield
        finally:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)

    def take(self) -> str:
        self._tmp.seek(0)
        text = self._tmp.read().decode("utf-8", errors="replace")
        self._tmp.seek(0)
        self._tmp.truncate()
        return " ".join(text.split())


def iter_events(path: str | Path) -> Iterator[HepMCEvent]:
    """The events of a HepMC3 / HepMC2 file, in file order, momenta in GeV.

    Raises (see the module docstring) :class:`HepMCError` naming the file and the event, for a
    file HepMC3 cannot read or one that ends without its end-of-listing line (raised after the
    last complete event was yielded), ``FileNotFoundError`` for a missing file.
    """
    import pyhepmc
    from pyhepmc.io import ReaderAscii, ReaderAsciiHepMC2, pyiostream

    path = Path(path)
    fmt, footer = detect_format(path)
    reader_class: Any = ReaderAscii if fmt == "HepMC3" else ReaderAsciiHepMC2
    settings = (pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings)
    pyhepmc.Setup.print_errors = pyhepmc.Setup.print_warnings = False  # errors named below
    try:
        with _opener(path)() as stream, closing(_StdoutCatcher()) as catcher:
            reader = reader_class(pyiostream(stream))
            last: HepMCEvent | None = None
            position = 0
            while True:
                event = pyhepmc.GenEvent()
                after = f" (after event number {last.number})" if last else ""
                try:
                    with catcher.catching():
                        ok = reader.read_event(event)
                except Exception as err:  # a Python stream error raised through pyhepmc
                    raise HepMCError(f"{path}: event #{position + 1}{after} cannot be read "
                                     f"({type(err).__name__}: {err})") from err
                message = catcher.take()
                at_end = reader.failed()
                if not ok:
                    quoted = f"; HepMC3 says: {message[:_QUOTE]}" if message else ""
                    raise HepMCError(
                        f"{path}: event #{position + 1}{after} cannot be parsed: the file is "
                        f"truncated or damaged{quoted}")
                if at_end and len(event.particles) == 0:
                    break  # end of file, after the end-of-listing line
                last = _convert(event, position, path)
                position += 1
                yield last
                if at_end and not _ends_with(path, footer):
                    raise HepMCError(
                        f"{path}: ends after event #{position} (event number {last.number}) "
                        f"without the {fmt} end-of-listing line {footer!r}: the file is "
                        "truncated (or still being written)")
                if at_end:
                    break  # the last event, then the end-of-listing line without a newline
            reader.close()
    finally:
        pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings = settings


def _convert(event: Any, position: int, path: Path) -> HepMCEvent:
    """A pyhepmc ``GenEvent`` as arrays in GeV; non-finite final-state momenta are refused."""
    import pyhepmc

    particles = event.numpy.particles
    p4 = np.stack([np.asarray(particles.px, dtype=np.float64),
                   np.asarray(particles.py, dtype=np.float64),
                   np.asarray(particles.pz, dtype=np.float64),
                   np.asarray(particles.e, dtype=np.float64)], axis=1).reshape(-1, 4)
    if event.momentum_unit == pyhepmc.Units.MEV:
        p4 = p4 / 1000.0  # GeV = 1000 MeV
    weights = list(event.weights)
    out = HepMCEvent(position, int(event.event_number), float(weights[0]) if weights else None,
                     np.asarray(particles.pid, dtype=np.int64),
                     np.asarray(particles.status, dtype=np.int64), p4)
    final = out.status == 1
    invisible(out.pid[final], out.where(path))  # names the event of an unknown PDG id
    bad = final & ~np.isfinite(out.p4).all(axis=1)
    if bad.any():
        raise HepMCError(f"{out.where(path)}: {int(bad.sum())} final-state particle(s) with a "
                         f"non-finite momentum (first: particle {int(np.flatnonzero(bad)[0]) + 1}"
                         f", PDG id {int(out.pid[bad][0])})")
    return out


# ---------------------------------------------------------------------- public API
def cluster_file(
    path: str | Path, config: ClusterConfig | None = None, *, progress: bool = False
) -> tuple[JetBatch, list[SelectionReport]]:
    """Jets of the visible final state of every event of a HepMC file (see the module).

    Returns the batch (``label`` ``config.label``, ``source_files`` (path,), ``entry`` the
    event position, extras ``event_number`` and, if every event is weighted, ``event_weight``)
    and the reports: events read, final-state particles (removed as invisible and outside
    |eta| < particle_eta_max), jets (``jetfm generate``'s cut names, plus the per-event and
    total limits). Raises :class:`HepMCError` naming the file (and event) for bad input, no
    visible particle, or no jet passing the cuts (the reports in the message).
    """
    config = config or ClusterConfig()
    path = Path(path)
    counts = _Counts()
    parts: list[ak.Array] = []
    numbers: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    weights: list[float | None] = []
    pending: list[HepMCEvent] = []
    n_kept = 0
    bar = tqdm(unit="event", desc=f"clustering {path.name}", disable=not progress)

    def flush() -> int:
        """Cluster the pending events; returns the number of jets kept."""
        p4 = np.concatenate([e.p4 for e in pending])
        pid = np.concatenate([e.pid for e in pending])
        status = np.concatenate([e.status for e in pending])
        mask, n_hidden, n_outside = visible_final_state(
            pid, status, p4[:, 0], p4[:, 1], p4[:, 2], config.particle_eta_max, str(path))
        counts.add("final-state particles", np.count_nonzero(status == 1))
        counts.add("invisible", n_hidden)
        counts.add("outside", n_outside)
        event_of = np.repeat(np.arange(len(pending)), [len(e.pid) for e in pending])
        n_visible = np.bincount(event_of[mask], minlength=len(pending))
        counts.add("events without visible particles", np.count_nonzero(n_visible == 0))
        particles, jet_event = cluster_events(
            *(p4[mask, i] for i in range(4)), pid[mask], n_visible, config, counts)
        take = len(particles) if config.n_jets is None else min(len(particles),
                                                                 config.n_jets - n_kept)
        counts.add("beyond requested number", len(particles) - take)
        parts.append(particles[:take])
        numbers.append(np.array([pending[j].number for j in jet_event[:take]], dtype=np.int64))
        positions.append(np.array([pending[j].position for j in jet_event[:take]],
                                  dtype=np.int64))
        pending.clear()
        return take

    with bar:
        for event in iter_events(path):
            counts.add("events", 1)
            weights.append(event.weight)
            pending.append(event)
            bar.update(1)
            if len(pending) == config.events_per_batch:
                n_kept += flush()
                if config.n_jets is not None and n_kept >= config.n_jets:
                    break
        if pending:
            n_kept += flush()

    tag = f"hepmc:{path.name}"
    reports = _reports(config, tag, counts, n_kept)
    n_events = counts.get("events", 0)
    if n_events == 0:
        raise HepMCError(f"{path}: a {detect_format(path)[0]} file without events")
    if counts["final-state particles"] - counts["invisible"] - counts["outside"] == 0:
        raise HepMCError(f"{path}: no visible final-state particle (status 1, not invisible, "
                         f"|eta| < {config.particle_eta_max:g}) in its {n_events} event(s); "
                         f"{reports[1]}")
    if n_kept == 0:
        raise HepMCError(f"{path}: no jet passed the selection; {reports[2]}")
    particles = ak.concatenate(parts)
    extra: dict[str, np.ndarray] = {"event_number": np.concatenate(numbers)}
    position = np.concatenate(positions)
    if all(w is not None for w in weights):
        extra["event_weight"] = np.array(weights, dtype=np.float64)[position]
    batch = JetBatch(
        particles,
        label=np.full(len(particles), config.label),
        extra=extra,
        source_files=(str(path),),
        source=np.zeros(len(particles), dtype=np.int64),
        entry=position,
    )
    return batch, reports


def _reports(config: ClusterConfig, tag: str, counts: _Counts, n_kept: int
             ) -> list[SelectionReport]:
    """Events, final-state particles and jets: what each step removed."""
    n_events = counts.get("events", 0)
    events = SelectionReport(
        f"{tag}: events", n_events, n_events - counts.get("events without visible particles", 0),
        {"no visible final-state particle": counts.get("events without visible particles", 0)})
    n_final = counts.get("final-state particles", 0)
    particles = SelectionReport(
        f"{tag}: final-state particles (status 1)", n_final,
        n_final - counts.get("invisible", 0) - counts.get("outside", 0),
        {"invisible (neutrinos, neutral BSM)": counts.get("invisible", 0),
         f"|eta| >= {config.particle_eta_max:g}": counts.get("outside", 0)})
    reasons = [*_cut_names(config)]
    if config.jets_per_event is not None:
        reasons.append(f"beyond the {config.jets_per_event} hardest of an event")
    reasons.append("beyond requested number")
    jets = SelectionReport(
        f"{tag}: anti-kt R={config.jet_r:g} jets with pT > {_JET_FLOOR * config.pt_min:g} GeV "
        f"from {n_events} events",
        counts.get("jets", 0), n_kept, {key: counts.get(key, 0) for key in reasons})
    return [events, particles, jets]
