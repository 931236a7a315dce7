"""Known-benign library warnings, filtered narrowly in one place, and FastJet's banner.

:func:`silence_benign_warnings` adds one ``ignore`` filter per entry of
:data:`BENIGN_WARNINGS`, each matching a warning category *and* the start of its message (and,
where it is emitted from jetfm code, the module), so any other warning — including other
warnings of the same libraries — is still shown. It is applied by the ``jetfm`` entry point
(:func:`jetfm.cli.main`) and by the Lightning trainer setup (:func:`jetfm.tasks.training.fit`),
so library users who train through jetfm are spared the same lines. It does nothing when the
user chose warning filters on the command line or in ``PYTHONWARNINGS`` (``sys.warnoptions``),
the convention of the Python ``warnings`` documentation for applications.
:func:`intended_eval_modes` (around Lightning's ``fit``) drops Lightning's "modules in eval
mode" warning only when that eval mode is the model's own design.

:func:`silence_fastjet_banner` routes FastJet's banner nowhere in a worker process, and
:func:`print_fastjet_banner` prints it in the main process before the workers start (FastJet's
``ClusterSequence::print_banner`` prints only on its first call in a process), so a run with
generator workers shows the banner, with its citation request, once, not once per worker.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BenignWarning:
    """A warning that carries no information for a jetfm user: ``category`` and a regular
    expression ``message`` matched at the start of the warning text (``module``: a regular
    expression for the module the warning is attributed to, empty for any), and ``why``."""

    category: type[Warning]
    message: str
    why: str
    module: str = ""


BENIGN_WARNINGS: tuple[BenignWarning, ...] = (
    BenignWarning(
        FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        "torch (2.13 here) deprecates torch.utils._pytree.LeafSpec, which Lightning 2.6 "
        "still builds (lightning.pytorch.utilities._pytree._tree_flatten) whenever a "
        "CombinedLoader wraps the data loaders, i.e. once per fit / validation; nothing for "
        "a user to change",
    ),
    BenignWarning(
        UserWarning,  # Lightning's PossibleUserWarning, a UserWarning subclass
        r"The number of training batches \(\d+\) is smaller than the logging interval",
        "small training sets (tests, tiny presets, D = 20 cells of the transfer study) have "
        "fewer batches per epoch than log_every_n_steps; Lightning then logs the training "
        "loss every few epochs (the validation loss is logged every epoch regardless)",
    ),
    BenignWarning(
        RuntimeWarning,  # scipy.linalg.LinAlgWarning, a RuntimeWarning subclass
        r"Matrix is singular\. The result might be inaccurate",
        "scipy.linalg.sqrtm in the Frechet distance (FPD) when a feature is constant in a "
        "small sample (e.g. every jet truncated to n_max particles): the square root of the "
        "singular product is still defined, and a non-finite result is regularised there",
        module=r"jetfm\.metrics\.distances",
    ),
    BenignWarning(
        UserWarning,
        r"Your `IterableDataset` has `__len__` defined",
        "jetfm.data.streaming.JetStream defines __len__ as this process's exact number of "
        "batches per epoch (every rank and worker takes the same number of steps), which is "
        "what Lightning's warning asks the dataset to guarantee",
    ),
)


def silence_benign_warnings() -> None:
    """Ignore exactly the warnings of :data:`BENIGN_WARNINGS` (idempotent: an existing
    identical filter is moved to the front, not repeated). Skipped when the user set warning
    options (``python -W ...`` or ``PYTHONWARNINGS``)."""
    if sys.warnoptions:
        return
    for benign in BENIGN_WARNINGS:
        warnings.filterwarnings("ignore", message=benign.message, category=benign.category,
                                module=benign.module)


EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"
"""Start of Lightning's warning about submodules in eval mode when ``fit`` starts (a
``PossibleUserWarning``); :func:`intended_eval_modes` drops it when the eval mode is the
module's own design."""


def kept_in_eval(module: Any) -> set[str]:
    """Names of the submodules of the ``torch.nn.Module`` ``module`` that ``module.train()``
    leaves in eval mode (by design: e.g. OmniJet's frozen tokenizer,
    :meth:`jetfm.models.omnijet.OmniJetBackbone.train`). Every submodule's mode is restored."""
    modes = {name: sub.training for name, sub in module.named_modules()}
    module.train()
    kept = {name for name, sub in module.named_modules() if not sub.training}
    for name, sub in module.named_modules():
        sub.training = modes[name]
    return kept


@contextmanager
def intended_eval_modes(module: Any) -> Iterator[None]:
    """Within the block, ignore Lightning's eval-mode warning (:data:`EVAL_MODE_WARNING`) if
    every submodule of ``module`` now in eval mode is one that ``module.train()`` keeps there
    (:func:`kept_in_eval`); any other submodule in eval mode — a model left in ``eval()`` by
    mistake — still gets the warning. Skipped when the user set warning options."""
    in_eval = {name for name, sub in module.named_modules() if not sub.training}
    with warnings.catch_warnings():
        if in_eval and not sys.warnoptions and in_eval <= kept_in_eval(module):
            warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING, category=UserWarning)
        yield


def print_fastjet_banner() -> None:
    """Print FastJet's banner now, if this process has not printed it yet (call it in the main
    process before starting workers that :func:`silence_fastjet_banner`)."""
    import fastjet

    fastjet._swig.ClusterSequence.print_banner()


def silence_fastjet_banner() -> None:
    """Send FastJet's banner nowhere in this process (call it in worker processes only;
    the main process prints the banner, with its citation request, once)."""
    import fastjet

    fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)
    fastjet._swig.ClusterSequence.print_banner()  # marks the banner as printed (to nowhere)
