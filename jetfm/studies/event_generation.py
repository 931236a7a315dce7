"""Event generation at fixed jet multiplicity: an L-GATr CFM vs a transformer CFM vs JetGPT
(``jetfm study event-generation``), after Spinner thesis Sec. 6.4 (Fig. 6.6, 6.7).

    jetfm study event-generation --config event_generation_tiny --out runs/event_generation_tiny

**Data.** Z -> mu mu + jets events from the built-in Pythia 8 source
(:func:`jetfm.data.zjets.generate_zjets`, simulated once per run, ``data/zjets.h5``; the thesis
uses t tbar + n jets from MadGraph + Pythia + Delphes, which jetfm cannot make here). For each
multiplicity ``n`` of ``multiplicities`` the events with exactly ``n`` jets are selected (the
rest are counted in ``summary.json``: ``data``), shuffled (seed ``[seed, n]``) and cut into
``n_eval`` *reference* events, ``n_eval`` *floor* events, the validation pool and the training
pool, all disjoint. A training-set size ``D`` of ``sizes`` takes the first ``D`` training
events and the first ``max(2, round(val_fraction * D))`` validation events, so the sets of
smaller ``D`` are subsets of larger ones.

**Generators** (``generators``: entries ``{name, kind, ...}``; every one is trained on the same
events for each ``(n, D)``, one model per multiplicity, as the thesis does):

* ``kind: cfm``: :class:`jetfm.models.cfm_generator.CFMGenerator` with ``model.velocity``
  ``lgatr`` (Lorentz-equivariant, beam and time reference multivectors) or ``transformer``,
  trained by :func:`jetfm.tasks.cfm.fit_cfm`; sampled with ``steps`` steps of ``solver``
  (reference: RK4, 50 steps); NLL with ``nll_steps`` steps and the ``divergence`` estimator.
* ``kind: jetgpt``: :class:`jetfm.models.jetgpt.JetGPT` on the events'
  :class:`~jetfm.models.jetgpt_inputs.EventPreprocessing` sequences, full likelihood loss,
  trained on the ``n``-jet events only (not conditioned on ``n``). It decides itself when to
  stop; it is sampled with room for ``n`` jets (sequences that want more are cut: overflow)
  and only sequences with exactly ``n`` jets are kept, in rounds until ``n_eval`` are kept;
  the others are counted (``sampling``: ``fewer jets``, ``more jets``), and events/s counts
  kept events only.

**Metrics** per generator, ``n`` and ``D``, all against the same reference events:

* the marginals of :func:`observables` (pT, eta of every object, jet masses, invariant masses
  and Delta R of pairs): histograms with ratio panels (``plots/<n>j/D<D>/<obs>.png``, every
  generator over the reference) and the Wasserstein-1 distance (bootstrap error) next to its
  floor, W1 of the floor events (same size, disjoint from training and reference) vs the
  reference;
* the classifier two-sample AUC (:func:`jetfm.metrics.two_sample.classifier_two_sample_auc`,
  a gradient-boosted classifier on :func:`classifier_features`: per object log pT, eta, phi,
  jet log m, every pair's Delta R and log invariant mass) of generated vs reference events,
  next to its floor (floor vs reference events);
* the negative log-likelihood per event (mean and standard error over the first ``n_nll``
  reference events) in the common physical coordinates ``(pT [GeV], eta, phi, m [GeV])`` of
  every object (muon masses are fixed and not counted): CFM through the ODE log-density
  (:meth:`~jetfm.models.cfm_generator.CFMGenerator.log_prob`) plus the log-Jacobian of its
  coordinates; JetGPT through its autoregressive likelihood (thesis Eq. (5.16): kinematics
  and the Bernoulli terms of the multiplicity, ~0 for a model trained on one multiplicity)
  plus its log-Jacobian and ``-log 2 pi`` for the leading muon's azimuth, which it does not
  generate (it is uniform). Jet masses below the 0.01 GeV floor of both representations count
  at the floor. Lower is better; differences between generators are what matters.
* sampling speed (events/s, on ``device``), training time and parameter count.

Generated events that decode to non-finite values are dropped and counted (``dropped``);
generated events out of pT order are re-ordered and counted (``reordered``); generated jet
pairs closer than the data's Delta R_jj cut are counted (``delta_r_below_cut``).

Outputs (a rerun reuses every stage whose record matches, :class:`jetfm.studies.Stage`; an
interrupted cell resumes its training from the checkpoint)::

    data/zjets.h5                              simulated events
    floors/<n>j.json                           W1 and AUC floors of each multiplicity
    cells/<n>j/D<D>/<name>/                    model, logs, generated.h5, result.json
    plots/<n>j/D<D>/<obs>.png                  marginals with ratio panels
    plots/<n>j_auc.png, plots/<n>j_nll.png     AUC and NLL vs D
    table.md, summary.json, summary.md
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE_INT, Rule, check_fields, from_mapping
from jetfm.console import Console
from jetfm.data.events import Events, read_events, write_events
from jetfm.physics.kinematics import delta_phi
from jetfm.report import format_with_error, markdown_table
from jetfm.studies import (
    Stage,
    config_from_yaml,
    start_cell,
    torch_threads,
    training_log,
    write_json,
    zjets_events,
)

console = Console(soft_wrap=True, emoji=False)
KINDS = ("cfm", "jetgpt")
ENTRY_KEYS: dict[str, tuple[str, ...]] = {
    "cfm": ("model", "training", "solver", "steps", "nll_steps", "divergence"),
    "jetgpt": ("model", "training", "max_rounds"),
}
NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")
DEVICES = ("cpu", "cuda")


def _default_generators() -> list[dict[str, Any]]:
    return [{"name": "lgatr_cfm", "kind": "cfm", "model": {"velocity": "lgatr"}},
            {"name": "transformer_cfm", "kind": "cfm", "model": {"velocity": "transformer"}},
            {"name": "jetgpt", "kind": "jetgpt"}]


@dataclass
class EventGenerationConfig:
    """The study (module docstring). ``n_events``: simulated events (all multiplicities);
    ``zjets``: :class:`jetfm.data.zjets.ZJetsConfig` fields; ``multiplicities``: jet counts;
    ``sizes``: training-set sizes D; ``n_eval``: generated, reference and floor events each;
    ``n_nll``: reference events whose likelihood is computed (0: none); ``classifier_iter``:
    boosting iterations of the two-sample classifier; ``device``: where generators sample and
    evaluate likelihoods (training follows each entry's ``training.accelerator``);
    ``threads``: torch CPU threads (0: torch's default; 1 is fastest on a machine shared with
    other jobs). Raises ``ValueError`` naming the key."""

    n_events: int = 1_000_000
    zjets: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    seed: int = 1
    multiplicities: list[int] = field(default_factory=lambda: [1, 2, 3])
    sizes: list[int] = field(default_factory=lambda: [1000, 10000])
    val_fraction: float = 0.1
    n_eval: int = 2000
    n_nll: int = 500
    n_bootstrap: int = 20
    classifier_iter: int = 100
    sample_batch: int = 2048
    device: str = "cpu"
    threads: int = 0
    generators: list[dict[str, Any]] = field(default_factory=_default_generators)

    def __post_init__(self) -> None:
        check_fields(self, {**dict.fromkeys(("n_events", "workers", "n_eval", "sample_batch",
                                             "classifier_iter"), POSITIVE_INT),
                            "seed": Rule(int, low=0), "n_nll": Rule(int, low=0),
                            "n_bootstrap": Rule(int, low=2), "threads": Rule(int, low=0),
                            "val_fraction": Rule(float, low=0, high=1, low_open=True,
                                                 high_open=True)})
        if self.n_eval < 10:
            raise ValueError(f"n_eval: {self.n_eval} must be >= 10 (the classifier test "
                             "splits the events)")
        if self.n_nll > self.n_eval:
            raise ValueError(f"n_nll: {self.n_nll} must be <= n_eval ({self.n_eval}): the "
                             "likelihood is taken on reference events")
        for key, low in (("multiplicities", 0), ("sizes", 2)):
            values = getattr(self, key)
            if not isinstance(values, list) or not values:
                raise ValueError(f"{key}: give a non-empty list, got {values!r}")
            checked = [_whole(f"{key}[{i}]", v, low) for i, v in enumerate(values)]
            if len(set(checked)) != len(checked):
                raise ValueError(f"{key}: {values!r} lists a value twice")
            setattr(self, key, sorted(checked))
        if self.device not in DEVICES:
            raise ValueError(f"device: {self.device!r} is not one of {list(DEVICES)}")
        if not isinstance(self.zjets, dict):
            raise ValueError(f"zjets: expected a mapping of ZJetsConfig keys, got "
                             f"{self.zjets!r}")
        from jetfm.data.zjets import ZJetsConfig

        zjets = from_mapping(ZJetsConfig, self.zjets, "zjets")
        if max(self.multiplicities) > zjets.max_jets:
            raise ValueError(f"multiplicities: {max(self.multiplicities)} jets exceeds "
                             f"zjets.max_jets = {zjets.max_jets}")
        _check_generators(self.generators)

    def n_val(self, size: int) -> int:
        """Validation events of training-set size ``size``."""
        return max(2, round(self.val_fraction * size))

    @property
    def n_needed(self) -> int:
        """Events of each multiplicity the split needs."""
        top = max(self.sizes)
        return 2 * self.n_eval + top + self.n_val(top)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()
                  ) -> EventGenerationConfig:
        """The config in the YAML file ``path`` (or a preset name) with ``KEY=VALUE``
        ``overrides`` (:func:`jetfm.studies.config_from_yaml`)."""
        return config_from_yaml(path, cls, overrides)


def _whole(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value \
            or value < low:
        raise ValueError(f"{name}: {value!r} must be a whole number >= {low}")
    return int(value)


def _check_generators(generators: Any) -> None:
    """Entries ``{name, kind, ...}`` with known keys and valid blocks; ``ValueError`` naming
    the entry and the key."""
    if not isinstance(generators, list) or not generators:
        raise ValueError("generators: give a list of at least one entry {name, kind, ...}")
    names = []
    for i, entry in enumerate(generators):
        where = f"generators[{i}]"
        if not isinstance(entry, dict) or "name" not in entry or "kind" not in entry:
            raise ValueError(f"{where}: an entry needs a name and a kind, got {entry!r}")
        if not isinstance(entry["name"], str) or not NAME.fullmatch(entry["name"]):
            raise ValueError(f"{where}: name {entry['name']!r} must be letters, digits and "
                             "- _ . + (it names a folder), not starting with a dot")
        if entry["kind"] not in KINDS:
            raise ValueError(f"{where} ({entry['name']}): kind {entry['kind']!r} is not one "
                             f"of {list(KINDS)}")
        valid = {"name", "kind", *ENTRY_KEYS[entry["kind"]]}
        extra = sorted(set(entry) - valid)
        if extra:
            raise ValueError(f"{where} ({entry['name']}): unknown keys {extra}; valid: "
                             f"{sorted(valid)}")
        try:
            _entry_settings(entry)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} ({entry['name']}): {err}") from None
        names.append(entry["name"])
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"generators: names {repeated} appear more than once")


def _entry_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """The checked settings of an entry (model config, sampler and likelihood settings)."""
    from jetfm.models.cfm_generator import DIVERGENCES, SOLVERS, CFMConfig
    from jetfm.models.jetgpt import JetGPTConfig
    from jetfm.models.jetgpt_inputs import EVENT_MODEL_FIELDS
    from jetfm.tasks.training import TrainConfig

    TrainConfig.from_overrides(entry.get("training", {}), 1, "training")
    if entry["kind"] == "cfm":
        model = from_mapping(CFMConfig, entry.get("model", {}), "model")
        solver = entry.get("solver", "rk4")
        divergence = entry.get("divergence", "hutchinson")
        if solver not in SOLVERS:
            raise ValueError(f"solver: {solver!r} is not one of {list(SOLVERS)}")
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence: {divergence!r} is not one of {list(DIVERGENCES)}")
        return {"model": asdict(model), "solver": solver, "divergence": divergence,
                "steps": _whole("steps", entry.get("steps", 50), 1),
                "nll_steps": _whole("nll_steps", entry.get("nll_steps", 20), 1)}
    fixed = {**EVENT_MODEL_FIELDS, "n_conditions": 1, "bayesian": False}
    from_mapping(JetGPTConfig, entry.get("model", {}), "model", fixed=fixed)
    return {"model": {**entry.get("model", {}), **fixed},
            "max_rounds": _whole("max_rounds", entry.get("max_rounds", 10), 1)}


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> EventGenerationConfig:
    """:meth:`EventGenerationConfig.from_yaml`."""
    return EventGenerationConfig.from_yaml(path, overrides)


# ----------------------------------------------------------------------------- data
def simulate(config: EventGenerationConfig, out_dir: Path) -> tuple[Events, str]:
    """The simulated events (:func:`jetfm.studies.zjets_events`) and the data stage digest."""
    return zjets_events(out_dir, config.n_events, config.zjets, config.workers, config.seed)


@dataclass
class Split:
    """The events of one multiplicity: reference, floor, validation pool, training pool."""

    n_jets: int
    reference: Events
    floor: Events
    val: Events
    train: Events

    def training(self, size: int, n_val: int) -> tuple[Events, Events]:
        return self.train[:size], self.val[:n_val]


def split_events(events: Events, config: EventGenerationConfig
                 ) -> tuple[dict[int, Split], dict[str, Any]]:
    """Per multiplicity the :class:`Split` (module docstring) and the data counts (events of
    each multiplicity, selected, used, and the events of other multiplicities dropped).
    ``ValueError`` naming the multiplicity when it has fewer events than the split needs."""
    counts = np.bincount(events.n_jets, minlength=events.max_jets + 1)
    data: dict[str, Any] = {"n_events": len(events),
                            "events_per_multiplicity": counts.tolist(), "selected": {}}
    splits = {}
    needed = config.n_needed
    top = max(config.sizes)
    for n in config.multiplicities:
        own = events[events.n_jets == n]
        if len(own) < needed:
            raise ValueError(
                f"{jets_text(n)}: {len(own):,} of the {len(events):,} simulated events have "
                f"exactly {jets_text(n)}; the split needs {needed:,} (2 n_eval + max(sizes) + "
                "validation): "
                f"raise n_events (about {math.ceil(needed / max(len(own), 1) * len(events)):,})"
                " or lower sizes / n_eval")
        order = np.random.default_rng([config.seed, n]).permutation(len(own))
        cuts = np.cumsum([0, config.n_eval, config.n_eval, config.n_val(top), top])
        parts = [own[np.sort(order[a:b])] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        splits[n] = Split(n, *parts)
        data["selected"][f"{n}j"] = {
            "with_n_jets": len(own), "used": int(cuts[-1]),
            "other_multiplicities_dropped": len(events) - len(own)}
    return splits, data


# ----------------------------------------------------------------------------- observables
def _p4(objects: np.ndarray) -> np.ndarray:
    pt, eta, phi, m = (objects[..., i] for i in range(4))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz], axis=-1)


def _pair_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = _p4(a) + _p4(b)
    return np.sqrt(np.maximum(s[..., 0] ** 2 - (s[..., 1:] ** 2).sum(-1), 0.0))


def jets_text(n: int) -> str:
    """``1 jet``, ``2 jets``."""
    return f"{n} jet" if n == 1 else f"{n} jets"


def _names(n_jets: int) -> list[str]:
    return ["mu1", "mu2", *(f"j{k + 1}" for k in range(n_jets))]


def observables(events: Events, n_jets: int) -> dict[str, np.ndarray]:
    """The marginals of the study for events with ``n_jets`` jets: ``pt_<o>`` [GeV] and
    ``eta_<o>`` of every object ``o`` (mu1, mu2, j1, ...), ``m_<j>`` [GeV] of every jet,
    ``m_mumu`` and ``m_<ja><jb>`` [GeV] (invariant masses of the muon pair and of every jet
    pair), ``dr_mumu``, ``dr_<ja><jb>`` and ``dr_mu1j1`` (Delta R in (eta, phi))."""
    objects, _ = events.objects()
    objects = objects[:, :2 + n_jets]
    names = _names(n_jets)
    out: dict[str, np.ndarray] = {}
    for k, o in enumerate(names):
        out[f"pt_{o}"] = objects[:, k, 0]
        out[f"eta_{o}"] = objects[:, k, 1]
    for k in range(n_jets):
        out[f"m_j{k + 1}"] = objects[:, 2 + k, 3]
    pairs = [(0, 1)] + [(2 + a, 2 + b) for a in range(n_jets) for b in range(a + 1, n_jets)]
    for a, b in pairs:
        key = "mumu" if a == 0 else f"{names[a]}{names[b]}"
        out[f"m_{key}"] = _pair_mass(objects[:, a], objects[:, b])
    for a, b in pairs + ([(0, 2)] if n_jets else []):
        key = "mumu" if (a, b) == (0, 1) else f"{names[a]}{names[b]}"
        out[f"dr_{key}"] = np.hypot(objects[:, a, 1] - objects[:, b, 1],
                                    delta_phi(objects[:, a, 2], objects[:, b, 2]))
    return out


LABELS = {"pt": ("p_{T,", "} [GeV]"), "eta": (r"\eta_{", "}"), "m": ("m_{", "} [GeV]"),
          "dr": (r"\Delta R_{", "}")}


def _label(key: str) -> str:
    """Axis label of an :func:`observables` key: ``pt_j1`` -> ``$p_{T,j_1}$ [GeV]``."""
    kind, what = key.split("_", 1)
    objects = re.findall(r"mu\d?|j\d", what)
    sub = " ".join(r"\mu" + (f"_{o[2:]}" if o[2:] else "") if o.startswith("mu")
                   else f"j_{o[1:]}" for o in objects)
    sub = sub.replace(r"\mu \mu", r"\mu\mu")
    head, tail = LABELS[kind]
    unit = " [GeV]" if tail.endswith("[GeV]") else ""
    return f"${head}{sub}{tail.removesuffix(' [GeV]')}${unit}"


def classifier_features(events: Events, n_jets: int) -> np.ndarray:
    """(N, F) inputs of the two-sample classifier: per object log pT, eta, phi, jet log m
    (thesis App. A.3: the event in its CFM coordinates), every pair's Delta R and log
    invariant mass (thesis: "augmented by all pairwise Delta R features")."""
    objects, _ = events.objects()
    objects = objects[:, :2 + n_jets]
    cols = [np.log(objects[..., 0]), objects[..., 1], objects[..., 2],
            np.log(np.maximum(objects[:, 2:, 3], 1e-3))]
    p = objects.shape[1]
    for a in range(p):
        for b in range(a + 1, p):
            cols.append(np.hypot(objects[:, a, 1] - objects[:, b, 1],
                                 delta_phi(objects[:, a, 2], objects[:, b, 2]))[:, None])
            cols.append(np.log(np.maximum(_pair_mass(objects[:, a], objects[:, b]),
                                          1e-3))[:, None])
    return np.concatenate(cols, axis=1)


def delta_r_below_cut(events: Events, n_jets: int, cut: float) -> int:
    """Events with a jet pair closer than ``cut`` in Delta R (the data's Delta R_jj cut)."""
    obs = observables(events, n_jets)
    close = np.zeros(len(events), dtype=bool)
    for key, values in obs.items():
        if key.startswith("dr_j"):
            close |= values <= cut
    return int(close.sum())


# ----------------------------------------------------------------------------- metrics
def _w1(generated: np.ndarray, reference: np.ndarray, n_bootstrap: int, seed: int
        ) -> tuple[float, float]:
    from jetfm.metrics.generation import bootstrap, wasserstein1

    estimate = bootstrap(wasserstein1, generated, reference, n_bootstrap, seed)
    return estimate.value, estimate.error


def _auc(reference: np.ndarray, generated: np.ndarray, config: EventGenerationConfig
         ) -> tuple[float, float]:
    from jetfm.metrics.two_sample import classifier_two_sample_auc

    estimate = classifier_two_sample_auc(reference, generated, n_bootstrap=config.n_bootstrap,
                                         max_iter=config.classifier_iter, seed=config.seed)
    return estimate.value, estimate.error


def floors(split: Split, config: EventGenerationConfig, out_dir: Path, data_digest: str
           ) -> dict[str, Any]:
    """W1 (with bootstrap error) of every observable and the classifier AUC of the floor
    events vs the reference events (``floors/<n>j.json``, a stage)."""
    n = split.n_jets
    path = out_dir / "floors" / f"{n}j.json"
    keys = {k: getattr(config, k) for k in ("n_eval", "n_bootstrap", "classifier_iter",
                                            "seed", "multiplicities", "sizes",
                                            "val_fraction")}
    stage = Stage(out_dir, f"floors/{n}j", {**keys, "n_jets": n}, {"data": data_digest},
                  [path])
    if stage.prepare():
        import json

        return json.loads(path.read_text())
    ref, flo = observables(split.reference, n), observables(split.floor, n)
    w1 = {k: _w1(flo[k], ref[k], config.n_bootstrap, config.seed) for k in ref}
    auc = _auc(classifier_features(split.reference, n), classifier_features(split.floor, n),
               config)
    result = {"w1": {k: {"value": v, "error": e} for k, (v, e) in w1.items()},
              "auc": {"value": auc[0], "error": auc[1]}}
    write_json(path, result)
    stage.finish()
    return result


# ----------------------------------------------------------------------------- generators
def _run_cfm(entry: dict[str, Any], settings: dict[str, Any], split: Split, size: int,
             config: EventGenerationConfig, cell: Path) -> dict[str, Any]:
    from jetfm.models.cfm_generator import (
        EventCoordinates,
        finite_events,
        load_cfm,
        parameter_count,
    )
    from jetfm.tasks.cfm import MODEL_FILE, fit_cfm

    n = split.n_jets
    path = cell / MODEL_FILE
    train, val = split.training(size, config.n_val(size))
    out: dict[str, Any] = {}
    if not path.exists():
        coords = EventCoordinates.fit(train, n)
        data = {}
        for part, events in (("train", train), ("val", val)):
            data[part], floored = coords.encode(events, f"{part} events")
            console.print(f"  {part}: {len(events):,} events; {floored} jets raised to the "
                          f"mass floor ({coords.mass_floor:g} GeV)")
        checkpoint = cell / "checkpoints" / "last.ckpt"
        begin = time.perf_counter()
        fit_cfm(data["train"], data["val"], settings["model"], coords,
                entry.get("training", {}), cell, seed=config.seed,
                resume=checkpoint if checkpoint.exists() else None)
        write_json(cell / "training_time.json", {"seconds": time.perf_counter() - begin})
    model, _ = load_cfm(path, config.device)
    coords = model.coords
    out["parameters"] = parameter_count(model)
    begin = time.perf_counter()
    x = model.sample(config.n_eval, settings["steps"], settings["solver"],
                     config.sample_batch, seed=config.seed).numpy()
    seconds = time.perf_counter() - begin
    finite = finite_events(x, coords)
    events, reordered = coords.decode(x[finite], {"generator": entry["name"]})
    out["sampling"] = {"seconds": seconds, "events_per_second": config.n_eval / seconds,
                       "steps": settings["steps"], "solver": settings["solver"],
                       "dropped_non_finite": int((~finite).sum()), "reordered": reordered}
    if config.n_nll:
        reference = split.reference[:config.n_nll]
        x_ref, _ = coords.encode(reference, "reference events")
        begin = time.perf_counter()
        log_p = model.log_prob(torch.from_numpy(x_ref), settings["nll_steps"],
                               settings["solver"], settings["divergence"],
                               config.sample_batch, seed=config.seed).double().numpy()
        log_p = log_p + coords.log_jacobian(reference, "reference events")
        out["nll"] = _nll(log_p, time.perf_counter() - begin,
                          f"{settings['divergence']} divergence, {settings['nll_steps']} "
                          f"{settings['solver']} steps")
    return {**out, "events": events}


def _nll(log_p: np.ndarray, seconds: float, how: str) -> dict[str, Any]:
    finite = np.isfinite(log_p)
    values = -log_p[finite]
    return {"value": float(values.mean()) if len(values) else float("nan"),
            "error": float(values.std(ddof=1) / math.sqrt(len(values)))
            if len(values) > 1 else float("nan"),
            "n_events": int(finite.sum()), "non_finite": int((~finite).sum()),
            "seconds": seconds, "how": how}


def jetgpt_log_jacobian(prep: Any, events: Events) -> np.ndarray:
    """(N,) ``log |det d x / d y|`` of JetGPT's generated components ``x``
    (:class:`~jetfm.models.jetgpt_inputs.EventPreprocessing`: standardised log(pT - pT_min),
    phi relative to the leading muon, eta, log m) w.r.t. the physical ``(pT, eta, phi, m)``
    of the objects (muon masses and the leading muon's phi excluded; phi - phi_1 has unit
    Jacobian). A jet below the mass floor counts at the floor."""
    from jetfm.models.jetgpt_inputs import EVENT_COMPONENTS, EVENT_MODEL_FIELDS

    objects, mask = events.objects()
    types = np.r_[0, 1, np.full(objects.shape[1] - 2, 2)]
    std = np.asarray(prep.std)[types]  # (T, 4)
    given = np.array([[c in names for c in EVENT_COMPONENTS]
                      for names in EVENT_MODEL_FIELDS["given"]])[types]  # (T, 4)
    cut = np.where(types == 2, prep.jet_pt_min, 0.0)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.stack([
            -np.log(np.where(mask, objects[..., 0] - cut, 1.0)) - np.log(std[None, :, 0]),
            np.zeros(objects.shape[:2]),
            np.broadcast_to(-np.log(std[None, :, 2]), objects.shape[:2]),
            -np.log(np.maximum(np.where(mask, objects[..., 3], 1.0), prep.mass_floor))
            - np.log(std[None, :, 3])], axis=-1)
    terms = np.where(given[None] | ~mask[..., None], 0.0, terms)
    return terms.sum(axis=(1, 2))


def _run_jetgpt(entry: dict[str, Any], settings: dict[str, Any], split: Split, size: int,
                config: EventGenerationConfig, cell: Path) -> dict[str, Any]:
    from jetfm.models.cfm_generator import parameter_count
    from jetfm.models.jetgpt import load_jetgpt
    from jetfm.models.jetgpt_inputs import EventPreprocessing
    from jetfm.tasks.jetgpt import MODEL_FILE, SequenceData, fit_jetgpt

    n = split.n_jets
    path = cell / MODEL_FILE
    train, val = split.training(size, config.n_val(size))
    if not path.exists():
        prep = EventPreprocessing.fit(train)
        data = {}
        for part, events in (("train", train), ("val", val)):
            x, mask, report = prep.encode(events)
            data[part] = SequenceData.of(x[:, :2 + n], mask[:, :2 + n])
            console.print(f"  {part}: {len(events):,} events; {report}")
        checkpoint = cell / "checkpoints" / "last.ckpt"
        begin = time.perf_counter()
        fit_jetgpt(data["train"], data["val"], settings["model"], entry.get("training", {}),
                   cell, loss="full", meta={"preprocessing": prep.to_dict()},
                   seed=config.seed, resume=checkpoint if checkpoint.exists() else None)
        write_json(cell / "training_time.json", {"seconds": time.perf_counter() - begin})
    net, meta = load_jetgpt(path, config.device)
    prep = EventPreprocessing(**meta["preprocessing"])
    out: dict[str, Any] = {"parameters": parameter_count(net)}
    kept_x, kept_mask = [], []
    counts = {"drawn": 0, "fewer jets": 0, "more jets": 0}
    seconds, n_kept, round_ = 0.0, 0, 0
    while n_kept < config.n_eval and round_ < settings["max_rounds"]:
        want = config.n_eval - n_kept
        draw = max(16, math.ceil(want * (1.1 if round_ == 0 else
                                         1.2 * counts["drawn"] / max(n_kept, 1))))
        begin = time.perf_counter()
        sample = net.sample(draw, 0, max_objects=2 + n, seed=config.seed * 1000 + round_,
                            batch_size=config.sample_batch)
        seconds += time.perf_counter() - begin
        n_objects = sample.n_objects
        keep = (n_objects == 2 + n) & ~sample.overflow
        counts["drawn"] += draw
        counts["more jets"] += int(sample.overflow.sum())
        counts["fewer jets"] += int(((n_objects < 2 + n) & ~sample.overflow).sum())
        kept_x.append(sample.x[keep][:want].numpy())
        kept_mask.append(sample.mask[keep][:want].numpy())
        n_kept += len(kept_x[-1])
        round_ += 1
    x, mask = np.concatenate(kept_x), np.concatenate(kept_mask)
    events = prep.decode(x, mask, {"generator": entry["name"]},
                         rng=np.random.default_rng(config.seed))
    out["sampling"] = {"seconds": seconds, "events_per_second": n_kept / max(seconds, 1e-9),
                       "kept": n_kept, **counts, "rounds": round_,
                       "policy": f"only sequences with exactly {jets_text(n)} are kept"}
    if n_kept < config.n_eval:
        console.print(f"  [yellow]{entry['name']}: {n_kept} of {config.n_eval} events with "
                      f"{n} jets after {round_} rounds[/]")
    if config.n_nll:
        reference = split.reference[:config.n_nll]
        x_ref, mask_ref, _ = prep.encode(reference)
        begin = time.perf_counter()
        with torch.no_grad():
            log_p = net.log_likelihood(torch.from_numpy(x_ref[:, :2 + n]).to(config.device),
                                       torch.from_numpy(mask_ref[:, :2 + n]).to(config.device),
                                       torch.zeros(len(reference), dtype=torch.long,
                                                   device=config.device))
        log_p = log_p.double().cpu().numpy() + jetgpt_log_jacobian(prep, reference) \
            - math.log(2 * math.pi)
        out["nll"] = _nll(log_p, time.perf_counter() - begin,
                          "autoregressive likelihood (kinematics + multiplicity terms)")
    return {**out, "events": events}


RUNNERS = {"cfm": _run_cfm, "jetgpt": _run_jetgpt}


def run_cell(entry: dict[str, Any], split: Split, size: int, config: EventGenerationConfig,
             out_dir: Path, data_digest: str, floor: dict[str, Any]) -> dict[str, Any]:
    """Train, sample and evaluate one generator at one ``(n, D)`` (a stage, reused while its
    record matches); returns its result."""
    import json

    n, name = split.n_jets, entry["name"]
    label = f"cells/{n}j/D{size}/{name}"
    cell = out_dir / label
    result_path, events_path = cell / "result.json", cell / "generated.h5"
    keys = {k: getattr(config, k) for k in ("n_eval", "n_nll", "n_bootstrap",
                                            "classifier_iter", "seed", "val_fraction",
                                            "multiplicities", "sizes", "sample_batch",
                                            "device")}
    stage = Stage(out_dir, label, {"entry": entry, "n_jets": n, "size": size, **keys},
                  {"data": data_digest}, [result_path, events_path])
    if stage.prepare():
        return json.loads(result_path.read_text())
    if start_cell(stage, cell):
        console.print(f"{label}: resuming the cell's unfinished run")
    console.rule(f"{name} ({entry['kind']}), {jets_text(n)}, D = {size:,}")
    settings = _entry_settings(entry)
    run = RUNNERS[entry["kind"]](entry, settings, split, size, config, cell)
    events: Events = run.pop("events")
    write_events(events, events_path)
    result: dict[str, Any] = {"name": name, "kind": entry["kind"], "n_jets": n,
                              "size": size, "n_val": config.n_val(size), **run}
    if entry["kind"] == "cfm":
        result["velocity"] = settings["model"]["velocity"]
    time_file = cell / "training_time.json"
    result["train_seconds"] = (json.loads(time_file.read_text())["seconds"]
                               if time_file.exists() else None)
    if (cell / "logs" / "metrics.csv").exists():
        result["training"] = training_log(cell)
    result.update(evaluate(events, split, config, floor))
    write_json(result_path, result)
    stage.finish()
    return result


def evaluate(events: Events, split: Split, config: EventGenerationConfig,
             floor: dict[str, Any]) -> dict[str, Any]:
    """W1 of every observable (with error and floor) and the classifier AUC of the generated
    ``events`` vs the reference; counts of generated jet pairs below the Delta R_jj cut."""
    n = split.n_jets
    cut = float(split.reference.meta.get("config", {}).get("dr_jj_min", 0.4))
    out: dict[str, Any] = {"n_generated": len(events),
                           "delta_r_below_cut": delta_r_below_cut(events, n, cut)
                           if len(events) else 0}
    if len(events) < 2:
        out["w1"], out["auc"] = {}, {"value": float("nan"), "error": float("nan")}
        return out
    ref, gen = observables(split.reference, n), observables(events, n)
    out["w1"] = {}
    for key in ref:
        value, error = _w1(gen[key], ref[key], config.n_bootstrap, config.seed)
        out["w1"][key] = {"value": value, "error": error,
                          "floor": floor["w1"][key]["value"]}
    value, error = _auc(classifier_features(split.reference, n),
                        classifier_features(events, n), config)
    out["auc"] = {"value": value, "error": error, "floor": floor["auc"]["value"]}
    return out


# ----------------------------------------------------------------------------- plots
def marginal_plots(results: list[dict[str, Any]], split: Split, size: int, out_dir: Path,
                   data_digest: str) -> list[Path]:
    """``plots/<n>j/D<D>/<obs>.png``: every generator's marginal over the reference, ratio
    panels (:func:`jetfm.plots.histograms.plot_distribution`); a stage, redrawn only when a
    generated sample or the data changed."""
    from jetfm.atomic import file_digest
    from jetfm.plots.histograms import plot_distribution

    n = split.n_jets
    ref = observables(split.reference, n)
    folder = out_dir / "plots" / f"{n}j" / f"D{size}"
    paths = [folder / f"{key}.png" for key in ref]
    samples = {r["name"]: out_dir / "cells" / f"{n}j" / f"D{size}" / r["name"] /
               "generated.h5" for r in results}
    stage = Stage(out_dir, f"plots/{n}j/D{size}",  # bins: the reference's range + 2 widths
                  {"generators": list(samples), "bins": "reference_spans=2", "style": 2},
                  {"data": data_digest, **{k: file_digest(v) for k, v in samples.items()}},
                  paths)
    if stage.prepare():
        return paths
    gens = {}
    for name, path in samples.items():
        events = read_events(path)
        if len(events):
            gens[name] = observables(events, n)
    for key, path in zip(ref, paths, strict=True):
        plot_distribution(ref[key], {name: g[key] for name, g in gens.items()}, path,
                          xlabel=_label(key), reference_label=f"truth (Z + {n} j)",
                          logy=key.startswith("pt_"))
    stage.finish()
    return paths


def scaling_plot(results: list[dict[str, Any]], n: int, metric: str, out_dir: Path,
                 floor: dict[str, float] | None = None) -> Path | None:
    """``plots/<n>j_<metric>.png``: AUC (with its floor: ``floor``, value and bootstrap error,
    drawn as a band) or NLL vs D per generator."""
    import matplotlib.pyplot as plt

    from jetfm.plots.style import place_legend, save_figure, use_style

    rows = [r for r in results if r["n_jets"] == n and r.get(metric)]
    if not rows:
        return None
    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    for name in dict.fromkeys(r["name"] for r in rows):
        own = sorted((r for r in rows if r["name"] == name), key=lambda r: r["size"])
        ax.errorbar([r["size"] for r in own], [r[metric]["value"] for r in own],
                    yerr=[r[metric]["error"] for r in own], fmt="o-", label=name)
    if metric == "auc":
        floor = floor or {"value": rows[0]["auc"]["floor"], "error": 0.0}
        shown = format_with_error(floor["value"], floor["error"])
        ax.axhline(floor["value"], color="grey", ls="--",
                   label=f"floor (truth vs truth), {shown}")
        if floor["error"]:
            ax.axhspan(floor["value"] - floor["error"], floor["value"] + floor["error"],
                       color="grey", alpha=0.2, lw=0)
        ax.set_ylabel("Classifier AUC (generated vs truth)")
    else:
        ax.set_ylabel("NLL [nats / event]")
    ax.set_xscale("log")
    ax.set_xlabel("Training events $D$")
    ax.set_title(f"Z + {jets_text(n)}", fontsize="small")
    place_legend(ax, fontsize="small")
    return save_figure(fig, out_dir / "plots" / f"{n}j_{metric}.png")


# ----------------------------------------------------------------------------- tables
def summary_rows(results: list[dict[str, Any]],
                 floors: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per (n, D, generator): AUC and floor (with its bootstrap error when
    ``floors``, multiplicity -> :func:`floors`, is given), NLL, W1 / floor (mean and worst
    over the observables), events/s, parameters, training time."""
    rows = []
    for r in results:
        floor = (floors or {}).get(r["n_jets"], {}).get("auc")
        ratios = {k: w["value"] / w["floor"] for k, w in r.get("w1", {}).items()
                  if w["floor"] and w["value"] is not None}
        worst = max(ratios, key=ratios.get) if ratios else None
        nll = r.get("nll")
        rows.append({
            "jets": r["n_jets"], "D": r["size"], "generator": r["name"],
            "AUC": format_with_error(r["auc"]["value"], r["auc"]["error"]),
            "AUC floor": format_with_error(floor["value"], floor["error"]) if floor
            else r["auc"].get("floor"),
            "NLL": format_with_error(nll["value"], nll["error"]) if nll else "n/a",
            "W1/floor mean": float(np.mean(list(ratios.values()))) if ratios else None,
            "W1/floor worst": f"{ratios[worst]:.3g} ({worst})" if worst else "n/a",
            "events/s": r["sampling"]["events_per_second"],
            "parameters": r["parameters"], "train s": r.get("train_seconds")})
    return rows


def w1_rows(results: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Per (D, generator) of multiplicity ``n``: W1 of every observable and its floor, as
    ``W1 (floor)``, in GeV for pT and masses (the column names say which)."""
    rows = []
    for r in results:
        if r["n_jets"] != n or not r.get("w1"):
            continue
        row: dict[str, Any] = {"D": r["size"], "generator": r["name"]}
        for key, w in r["w1"].items():
            unit = " [GeV]" if key.split("_", 1)[0] in ("pt", "m") else ""
            row[key + unit] = (f"{w['value']:.3g} ({w['floor']:.2g})"
                               if w["value"] is not None and w["floor"] is not None else None)
        rows.append(row)
    return rows


def write_tables(results: list[dict[str, Any]], config: EventGenerationConfig,
                 data: dict[str, Any], out_dir: Path,
                 floors: dict[int, dict[str, Any]] | None = None) -> str:
    """``table.md``: the summary table, the W1 / floor tables per multiplicity and the
    sampling counts."""
    lines = ["# Event generation: L-GATr CFM vs transformer CFM vs JetGPT", "",
             f"Z -> mu mu + n jets (Pythia 8), {config.n_eval:,} generated events per "
             "generator against as many held-out truth events. AUC: classifier two-sample "
             "test (0.5 = indistinguishable; floor: truth vs truth). NLL: nats per event in "
             "(pT [GeV], eta, phi, m [GeV]) of every object, on the first "
             f"{config.n_nll} reference events. W1/floor: Wasserstein-1 of a marginal over its "
             "floor (truth vs truth), mean and worst over the marginals.", "",
             markdown_table(summary_rows(results, floors)), ""]
    for n in config.multiplicities:
        rows = w1_rows(results, n)
        if rows:
            lines += [f"## Z + {jets_text(n)}: W1 per marginal (floor: truth vs truth)", "",
                      markdown_table(rows),
                      ""]
    sampling = [{"jets": r["n_jets"], "D": r["size"], "generator": r["name"],
                 **{k: v for k, v in r["sampling"].items() if k not in ("seconds",)},
                 "delta_r_below_cut": r.get("delta_r_below_cut")} for r in results]
    lines += ["## Sampling", "", markdown_table(sampling), "",
              f"Data: {data['n_events']:,} simulated events; per multiplicity: "
              + ", ".join(f"{k}: {v['with_n_jets']:,} with exactly that many jets, "
                          f"{v['used']:,} used" for k, v in data["selected"].items()), ""]
    text = "\n".join(lines)
    write_text_atomic(out_dir / "table.md", text)
    return text


# ----------------------------------------------------------------------------- run
def run(config: EventGenerationConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole study (module docstring); returns the summary written to summary.json.
    Torch runs on ``config.threads`` CPU threads meanwhile (restored afterwards)."""
    with torch_threads(config.threads):
        return _run(config, Path(out_dir))


def _run(config: EventGenerationConfig, out_dir: Path) -> dict[str, Any]:
    begin = time.perf_counter()
    events, data_digest = simulate(config, out_dir)
    splits, data = split_events(events, config)
    console.print(f"data: {data['n_events']:,} events; with n jets: "
                  + ", ".join(f"{k} {v['with_n_jets']:,}" for k, v in data["selected"].items()))
    results, floor_by_n = [], {}
    cells = len(config.multiplicities) * len(config.sizes) * len(config.generators)
    i = 0
    for n in config.multiplicities:
        split = splits[n]
        floor = floor_by_n[n] = floors(split, config, out_dir, data_digest)
        for size in config.sizes:
            group = []
            for entry in config.generators:
                i += 1
                console.print(f"[{i}/{cells}] {entry['name']}: {jets_text(n)}, D = {size:,}")
                group.append(run_cell(entry, split, size, config, out_dir, data_digest,
                                      floor))
            marginal_plots(group, split, size, out_dir, data_digest)
            results += group
        for metric in ("auc", "nll"):
            scaling_plot(results, n, metric, out_dir, floor["auc"])
    table = write_tables(results, config, data, out_dir, floor_by_n)
    summary = {"config": asdict(config), "data": data,
               "floors": {f"{n}j": floor for n, floor in floor_by_n.items()},
               "results": results, "rows": summary_rows(results, floor_by_n),
               "seconds": time.perf_counter() - begin}
    write_json(out_dir / "summary.json", summary)
    write_text_atomic(out_dir / "summary.md", table)
    return summary


__all__ = ["EventGenerationConfig", "classifier_features", "load_config", "observables", "run",
           "split_events", "summary_rows"]
