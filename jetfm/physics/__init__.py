"""Jet physics: kinematics, observables, FastJet clustering."""
