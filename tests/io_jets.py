"""Small random but physical jets for the reader/writer tests (not a test module)."""

from __future__ import annotations

import awkward as ak
import numpy as np

from jetfm.data import JetBatch
from jetfm.data.pid import charge_from_pid, particle_type_flags

# Typical jet constituents and their masses [GeV].
PIDS = np.array([211, -211, 321, -321, 22, 130, 2112, 11, -13])
MASSES = np.array([0.13957, 0.13957, 0.49368, 0.49368, 0.0, 0.49761, 0.93957, 0.000511, 0.10566])


def random_jets(
    n_jets: int,
    seed: int = 0,
    counts: np.ndarray | None = None,
    *,
    n_min: int = 1,
    n_max: int = 40,
    label: bool = True,
) -> JetBatch:
    """Jets of pT ~ 300-1000 GeV, |eta| < 2, constituents within dR ~ 0.4 of the axis.

    Particles carry pid, charge, the particle-type flags and impact parameters [mm].
    """
    rng = np.random.default_rng(seed)
    if counts is None:
        counts = rng.integers(n_min, n_max + 1, size=n_jets)
    counts = np.asarray(counts)
    total = int(counts.sum())
    jet_idx = np.repeat(np.arange(n_jets), counts)
    jet_pt = rng.uniform(300, 1000, n_jets)
    jet_eta = rng.uniform(-2, 2, n_jets)
    jet_phi = rng.uniform(-np.pi, np.pi, n_jets)
    z = rng.exponential(1.0, total)
    z_sum = np.bincount(jet_idx, weights=z, minlength=n_jets)
    pt = jet_pt[jet_idx] * z / z_sum[jet_idx]
    eta = jet_eta[jet_idx] + rng.normal(0, 0.15, total)
    phi = jet_phi[jet_idx] + rng.normal(0, 0.15, total)
    kind = rng.integers(0, len(PIDS), total)
    pid = PIDS[kind]
    charge = charge_from_pid(pid)
    fields = {"pid": pid, "charge": charge, **particle_type_flags(pid, charge)}
    fields["d0val"] = rng.normal(0, 0.05, total) * (charge != 0)
    fields["d0err"] = rng.uniform(0.01, 0.02, total) * (charge != 0)
    fields["dzval"] = rng.normal(0, 0.05, total) * (charge != 0)
    fields["dzerr"] = rng.uniform(0.01, 0.02, total) * (charge != 0)

    def ragged(x: np.ndarray) -> ak.Array:
        return ak.unflatten(x, counts)

    return JetBatch.from_ptetaphi(
        ragged(pt),
        ragged(eta),
        ragged(phi),
        ragged(MASSES[kind]),
        fields={k: ragged(v) for k, v in fields.items()},
        label=rng.integers(0, 10, n_jets) if label else None,
    )


def with_value(batch: JetBatch, jet: int, field: str, value: float) -> JetBatch:
    """Copy of ``batch`` with ``field`` of the first particle of jet ``jet`` set to ``value``."""
    counts = batch.n_particles
    flat = ak.to_numpy(ak.flatten(batch.particles[field])).copy()
    flat[int(counts[:jet].sum())] = value
    out = batch[:]
    out.particles = ak.with_field(batch.particles, ak.unflatten(flat, counts), field)
    return out


def assert_same_batch(a: JetBatch, b: JetBatch) -> None:
    """Exactly equal particles (values and dtypes), labels, extras and provenance."""
    assert a.fields == b.fields
    assert ak.array_equal(a.particles, b.particles, dtype_exact=True)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        x, y = a.extra[key], b.extra[key]
        assert type(x) is type(y), key  # numpy stays numpy, ragged awkward stays awkward
        if isinstance(x, ak.Array):
            assert ak.array_equal(x, y, dtype_exact=True), key
        else:
            assert x.dtype == y.dtype, key
            np.testing.assert_array_equal(x, y, err_msg=key)
    assert a.source_files == b.source_files
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_array_equal(a.entry, b.entry)
