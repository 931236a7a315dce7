"""PDG particle ids -> electric charge and the JetClass particle-type flags.

Flags follow the particle-flow categories used by JetClass (Delphes) and CMS:
electron (|pid| = 11), muon (|pid| = 13), photon (pid = 22), charged hadron (any other
charged particle) and neutral hadron (any other neutral particle). CMS particle-flow
candidates in HF carry the pseudo-ids 1 (hadronic: neutral hadron) and 2 (electromagnetic:
photon), as in AspenOpenJets. Charges come from the ``particle`` package (PDG tables).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from particle import Particle
from particle.pdgid import PDGID

CMS_HF_HADRON = 1
CMS_HF_EM = 2


@lru_cache(maxsize=4096)
def _charge(pid: int) -> float:
    if abs(pid) in (CMS_HF_HADRON, CMS_HF_EM):
        return 0.0
    if not PDGID(pid).is_valid:
        raise ValueError(f"invalid PDG id {pid}")
    try:
        return float(Particle.from_pdgid(pid).charge)
    except Exception:  # particle raises its own ParticleNotFound for valid-but-unlisted ids
        three_charge = PDGID(pid).three_charge
        if three_charge is None:
            raise ValueError(f"no charge known for PDG id {pid}") from None
        return three_charge / 3.0


def charge_from_pid(pid: np.ndarray) -> np.ndarray:
    """Electric charge [e] for an integer array of PDG ids (any shape)."""
    pid = np.asarray(pid, dtype=np.int64)
    unique, inverse = np.unique(pid, return_inverse=True)
    table = np.array([_charge(int(p)) for p in unique], dtype=np.float32)
    return table[inverse].reshape(pid.shape)


def particle_type_flags(pid: np.ndarray, charge: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """JetClass flags (float32 0/1) from PDG ids; ``charge`` defaults to the PDG charge.

    Keys: ``is_charged_hadron``, ``is_neutral_hadron``, ``is_photon``, ``is_electron``,
    ``is_muon``. Exactly one flag is 1 for every particle.
    """
    pid = np.asarray(pid, dtype=np.int64)
    if charge is None:
        charge = charge_from_pid(pid)
    apid = np.abs(pid)
    is_electron = apid == 11
    is_muon = apid == 13
    is_photon = (pid == 22) | (apid == CMS_HF_EM)
    lepton_or_photon = is_electron | is_muon | is_photon
    charged = np.asarray(charge) != 0
    flags = {
        "is_charged_hadron": charged & ~lepton_or_photon,
        "is_neutral_hadron": ~charged & ~lepton_or_photon,
        "is_photon": is_photon,
        "is_electron": is_electron,
        "is_muon": is_muon,
    }
    return {k: v.astype(np.float32) for k, v in flags.items()}
