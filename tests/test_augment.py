"""D4 symmetry images of jets (jetfm.data.augment): what each image keeps and changes."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data.augment import DIHEDRAL, dihedral_images
from jetfm.physics.observables import nsubjettiness


def test_images_keep_pt_and_distance_to_the_axis_and_move_the_angles():
    batch = random_jets(20, seed=3, n_max=30)
    images = dihedral_images(batch, 8)
    n = len(batch)
    assert len(images) == 8 * n
    np.testing.assert_array_equal(images.label, np.tile(batch.label, 8))
    dr = ak.to_numpy(ak.flatten(np.hypot(batch.eta_rel, batch.phi_rel)))
    pt = ak.to_numpy(ak.flatten(batch.pt))
    for k, (s_eta, s_phi, swap) in enumerate(DIHEDRAL):
        image = images[k * n:(k + 1) * n]
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(image.pt)), pt, rtol=1e-6)
        # relative angles as built (the image's own axis moves by the pT-weighted asymmetry
        # only: compare with the original jet's axis)
        eta = ak.to_numpy(ak.flatten(image.eta - batch.jet_eta))
        phi = ak.to_numpy(ak.flatten(image.phi - batch.jet_phi))
        a = s_eta * ak.to_numpy(ak.flatten(batch.eta_rel))
        b = s_phi * ak.to_numpy(ak.flatten(batch.phi_rel))
        if swap:
            a, b = b, a
        np.testing.assert_allclose(eta, a, atol=1e-9)
        np.testing.assert_allclose(np.angle(np.exp(1j * phi)), b, atol=1e-9)
        np.testing.assert_allclose(np.hypot(eta, np.angle(np.exp(1j * phi))), dr, atol=1e-9)


def test_reflections_keep_n_subjettiness():
    """eta -> -eta and phi -> -phi about the axis are exact for the (y, phi) distances of
    massless particles to the reflected axes: tau_N is the same (the swaps only to small-angle
    accuracy)."""
    batch = random_jets(15, seed=4, n_max=25)
    images = dihedral_images(batch, 4)
    tau = nsubjettiness(images, n_max=3)
    n = len(batch)
    for k in range(1, 4):
        np.testing.assert_allclose(tau[k * n:(k + 1) * n], tau[:n], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n_images", [0, 9])
def test_number_of_images_is_checked(n_images):
    with pytest.raises(ValueError, match="n_images must be in"):
        dihedral_images(random_jets(3), n_images)
