"""Parquet storage of clustering trees: the writer refuses non-finite node momenta."""

from __future__ import annotations

import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data import JetDataError
from jetfm.data.trees_io import read_trees, write_trees
from jetfm.physics.trees import build_trees


def test_write_trees_refuses_non_finite_nodes(tmp_path):
    trees = build_trees(random_jets(4, seed=2, n_min=3, n_max=6))
    path = tmp_path / "trees.parquet"
    write_trees(trees, path)
    np.testing.assert_array_equal(read_trees(path).energy, trees.energy)
    trees.energy[trees.offsets[2]] = np.nan  # first node of jet 2
    bad = tmp_path / "bad.parquet"
    with pytest.raises(JetDataError, match=r"bad\.parquet: refusing to write column 'energy'"
                                           r".*1 of 4 jets \(first: jet 2\)"):
        write_trees(trees, bad)
    assert not bad.exists()
