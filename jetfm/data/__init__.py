"""Jet data: the :class:`JetBatch` model, the class list, readers, writers and sources."""

from jetfm.data.batch import JetBatch, JetDataError, Padded, SelectionReport
from jetfm.data.classes import CLASSES, JETCLASS_CLASSES, UNLABELLED, class_index, class_name
from jetfm.data.io import FORMATS, read_jets, write_jets

__all__ = [
    "CLASSES",
    "JETCLASS_CLASSES",
    "UNLABELLED",
    "JetBatch",
    "JetDataError",
    "Padded",
    "SelectionReport",
    "class_index",
    "class_name",
    "FORMATS",
    "read_jets",
    "write_jets",
]
