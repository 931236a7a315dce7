"""Symmetry images of jets for data augmentation.

In the small-angle limit a jet's constituent pattern in (eta_rel, phi_rel) around its axis
has no preferred orientation: reflecting eta_rel, reflecting phi_rel and swapping the two
(the symmetries of the square, the dihedral group D4) give jets as likely as the original
(jet-image studies use the same flips, e.g. de Oliveira et al., arXiv:1511.05190, sec. 3).
Each image keeps every particle's pT and its distance to the axis, so the jet's pT
(approximately), mass (to the small-angle approximation) and N-subjettiness ratios are kept;
only the orientation changes. Images are built from massless particles at the jet axis
(eta, phi) plus the transformed relative angles, as the tokenizers see them.
"""

from __future__ import annotations

from jetfm.data.batch import JetBatch

# (eta sign, phi sign, swap): the 8 elements of D4, identity first
DIHEDRAL: tuple[tuple[int, int, bool], ...] = (
    (1, 1, False), (-1, 1, False), (1, -1, False), (-1, -1, False),
    (1, 1, True), (-1, 1, True), (1, -1, True), (-1, -1, True),
)


def dihedral_images(batch: JetBatch, n_images: int) -> JetBatch:
    """The first ``n_images`` D4 images of ``batch`` (order of :data:`DIHEDRAL`: the first
    is ``batch`` itself with massless particles), ``n_images`` x len(batch) jets, image by
    image; labels kept, extra columns dropped.
    ``ValueError`` unless 1 <= ``n_images`` <= 8."""
    if not 1 <= n_images <= len(DIHEDRAL):
        raise ValueError(f"n_images must be in [1, {len(DIHEDRAL)}], got {n_images}")
    eta_rel, phi_rel = batch.eta_rel, batch.phi_rel
    axis_eta = eta_rel * 0 + batch.jet_eta  # the jet axis, broadcast to the particles
    axis_phi = phi_rel * 0 + batch.jet_phi
    images = []
    for s_eta, s_phi, swap in DIHEDRAL[:n_images]:
        a, b = s_eta * eta_rel, s_phi * phi_rel
        if swap:
            a, b = b, a
        images.append(JetBatch.from_ptetaphi(batch.pt, axis_eta + a, axis_phi + b,
                                             label=batch.label))
    return JetBatch.concatenate(images)
