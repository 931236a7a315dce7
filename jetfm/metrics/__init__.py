"""Evaluation metrics: tagging (:mod:`~jetfm.metrics.tagging`), 1-D generation metrics with
bootstrap and floors (:mod:`~jetfm.metrics.generation`), FPD/KPD on 8 jet observables
(:mod:`~jetfm.metrics.distances`), energy-flow polynomials with jetnet's FPD, KPD and W1-EFP
(:mod:`~jetfm.metrics.efp`), the classifier two-sample test
(:mod:`~jetfm.metrics.two_sample`), power-law fits (:mod:`~jetfm.metrics.scaling`) and the
JetBatch-level evaluation (:mod:`~jetfm.metrics.evaluate`)."""
