"""The one class list every reader, generator and model in jetfm uses.

The first ten entries are the JetClass classes, in the order of the JetClass ``label_*``
branches (Qu et al., Particle Transformer, arXiv:2202.03772). Datasets with other classes map
onto this list: top tagging (QCD -> ``QCD``, top -> ``Tbqq``), JetNet (g -> ``QCD_gluon``,
q -> ``QCD_quark``, t -> ``Tbqq``, W -> ``Wqq``, Z -> ``Zqq``), quark/gluon (1 -> ``QCD_quark``,
0 -> ``QCD_gluon``). Real data without truth (AspenOpenJets) carries ``UNLABELLED`` (-1).
"""

from __future__ import annotations

JETCLASS_CLASSES: tuple[str, ...] = (
    "QCD",  # q/g jets
    "Hbb",  # H -> b b~
    "Hcc",  # H -> c c~
    "Hgg",  # H -> g g
    "H4q",  # H -> W W* -> 4 q
    "Hqql",  # H -> W W* -> l nu q q'
    "Zqq",  # Z -> q q~
    "Wqq",  # W -> q q'
    "Tbqq",  # t -> b W -> b q q'
    "Tbl",  # t -> b W -> b l nu
)
CLASSES: tuple[str, ...] = JETCLASS_CLASSES + ("QCD_quark", "QCD_gluon")
UNLABELLED: int = -1

CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

# JetClass ROOT branch for each of the first ten classes.
JETCLASS_LABEL_BRANCHES: tuple[str, ...] = tuple(f"label_{c}" for c in JETCLASS_CLASSES)


def class_index(name: str) -> int:
    """Index of class ``name`` in :data:`CLASSES`; raises ``KeyError`` listing valid names."""
    try:
        return CLASS_INDEX[name]
    except KeyError:
        raise KeyError(f"unknown jet class {name!r}; jetfm classes are {list(CLASSES)}") from None


def class_name(index: int) -> str:
    """Name of class ``index`` (``"unlabelled"`` for -1)."""
    if index == UNLABELLED:
        return "unlabelled"
    return CLASSES[index]
