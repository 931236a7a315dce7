"""jetfm: foundation models for jet physics.

The public data API lives in :mod:`jetfm.data` (the :class:`~jetfm.data.JetBatch` every reader
produces and every model consumes) and the physics in :mod:`jetfm.physics`.
Units: GeV for momenta, energies and masses; radians for angles.
"""

__version__ = "0.1.0"
