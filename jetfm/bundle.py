"""Model bundles: one directory per trained model, loaded with one call and no unpickling.

    jetfm.save(tagger, "runs/top/tagger", card={"data": {...}, "training": {...}})
    tagger = jetfm.load("runs/top/tagger", device="cuda")     # eval mode, ready to use

Layout (the Hugging Face Hub's: ``config.json`` + ``model.safetensors`` + ``README.md``)::

    config.json            jetfm_version, format_version, kind, model (architecture and
                           options), files (SHA-256 of each weight file), card (provenance)
    model.safetensors      the weights (tensors only; safetensors, never pickle)
    features.json          the feature spec / standardisation (:class:`FeatureSpec`), for
                           backbones with particle features and the PET generator
    tokenizer.json         a token model's tokenizer: its configuration and preprocessing
    tokenizer.safetensors  the tokenizer's weights
    README.md              the generated model card (what the model is, what it was trained on,
                           the training budget, the evaluation table); not read by :func:`load`

Kinds (``config.json`` ``kind``) and what :func:`load` returns:

=================== ============================================================================
``tagger``          :class:`~jetfm.models.tagger.Tagger`: any backbone (part, pet, lgatr,
                    omnijet) + any head of :data:`jetfm.models.heads.HEADS`
``backbone``        a :class:`~jetfm.models.backbone.Backbone` alone (a pre-trained body)
``omnijet``         :class:`OmniJetGenerator`: OmniJet-alpha's tokenizer + GPT + next-token head,
                    the pipeline's two files (tokenizer, generative backbone) as one bundle
``tokenizer``       :class:`~jetfm.models.tokenizer.Tokenizer` (VQ-VAE or feature codebook)
``pet_generator``   :class:`~jetfm.models.pet_generator.PETGenerator`
``jet_evolution``   :class:`~jetfm.models.jet_evolution.JetEvolutionModel` (CPU only)
``thesis_evolution`` :class:`~jetfm.models.thesis_evolution.ThesisEvolutionModel` (CPU only)
=================== ============================================================================

A bundle with a tokenizer records the tokenizer's fingerprint
(:attr:`~jetfm.models.tokenizer.Tokenizer.fingerprint`) in ``config.json``; loading recomputes
it from ``tokenizer.json`` + ``tokenizer.safetensors`` and refuses another tokenizer
(:func:`~jetfm.models.tokenizer.check_fingerprint`), as the two-file pipeline does.

Writing is atomic (:func:`save`): the files go to a temporary directory next to the target,
renamed to the target name only when every file is written; an existing bundle is replaced
(never a directory that is not a bundle), and a failure leaves no partial directory.

Errors (:func:`load`) name the file and the key: ``FileNotFoundError`` for a missing bundle or
file; ``ValueError`` for a bundle from a newer jetfm or format version, a weight file whose
SHA-256 differs from the one recorded (corruption), a file that is not safetensors or not JSON,
an unknown ``kind``, backbone or head, a key that is missing or unknown at any level, weights
that do not fit the configuration, and a tokenizer of another fingerprint.

Why not ``huggingface_hub.PyTorchModelHubMixin``: it is not a jetfm dependency (not installed),
its ``config.json`` is the ``__init__`` keyword arguments, while jetfm models are built from
objects (a backbone, a feature spec, a tokenizer) and some are not ``nn.Module`` (the
jet-evolution models, the tokenizer); ``save_pretrained`` writes into the target directory in
place (not atomically), and ``from_pretrained`` falls back to ``torch.load`` of
``pytorch_model.bin`` (pickle) when a directory has no safetensors. The layout here is the
Hub's, so a bundle directory can be uploaded as a model repository as it is.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

import jetfm
from jetfm.atomic import file_digest
from jetfm.checkpoint import check_device, load_model, prefixed, save_model
from jetfm.checks import POSITIVE, Rule, from_mapping, number
from jetfm.data.batch import JetBatch
from jetfm.data.transforms import FeatureTransform, Preprocessing
from jetfm.models import jet_evolution, thesis_evolution
from jetfm.models.backbone import Backbone, backbone_class, load_backbone
from jetfm.models.features import FeatureSpec, ParticleInputs
from jetfm.models.gpt import NextTokenHead
from jetfm.models.heads import HEADS
from jetfm.models.jet_evolution import EvolutionConfig, JetEvolution, JetEvolutionModel
from jetfm.models.omnijet import OmniJetBackbone, load_generative, sample_jets
from jetfm.models.pet_generator import PETGenerator, PETGeneratorConfig, load_generator
from jetfm.models.tagger import Tagger, load_tagger
from jetfm.models.thesis_evolution import (
    ThesisConfig,
    ThesisEvolutionModel,
    ThesisEvolutionNet,
    load_thesis_model,
)
from jetfm.models.tokenizer import (
    TOKEN_MODELS,
    Tokenizer,
    build_token_model,
    check_fingerprint,
)
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.report import markdown_table

JET_EVOLUTION_KIND = jet_evolution.MODEL_KIND
JET_EVOLUTION_FEATURES = jet_evolution.N_FEATURES
THESIS_KIND = thesis_evolution.MODEL_KIND

FORMAT_VERSION = 1
"""Version of the bundle layout; a reader refuses a bundle of a newer format."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FEATURES_FILE = "features.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_WEIGHTS_FILE = "tokenizer.safetensors"
CARD_FILE = "README.md"
CONFIG_KEYS = ("jetfm_version", "format_version", "kind", "model", "files", "card")
CARD_KEYS = ("title", "description", "data", "training", "evaluation", "notes")
"""Keys of a model card (:func:`save` ``card``): ``title``, ``description``, ``notes`` (text);
``data`` (what the model was trained on: generator settings or file provenance), ``training``
(budget: epochs, steps, batch size, wall time, device, ...), mappings or text;
``evaluation``: a table, as rows (a list of mappings) or one mapping of metric -> value."""


class OmniJetGenerator(nn.Module):
    """OmniJet-alpha's generative model as one object (Birk, Hallin, Kasieczka 2024): the
    backbone (the fixed tokenizer + the GPT) and its next-token head.

    ``tokenize(jets)`` gives the token sequences (B, n_max + 2) and mask;
    ``forward(inputs)`` the next-token logits (B, n_max + 2, vocab_size); ``generate(n)``
    samples and decodes jets (:func:`jetfm.models.omnijet.sample_jets`). The pipeline's two
    files become one bundle with :meth:`save`; :func:`from_file` reads the two files (their
    fingerprints checked).
    """

    def __init__(self, backbone: OmniJetBackbone, head: NextTokenHead) -> None:
        """``ValueError`` when ``head`` does not fit the backbone's GPT (width, vocabulary or
        code features)."""
        super().__init__()
        expected = NextTokenHead.for_backbone(backbone.gpt)
        shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in expected.state_dict().items()}:
            raise ValueError(f"the next-token head {shapes} does not fit the backbone's GPT "
                             f"(dim {backbone.dim}, vocabulary {backbone.gpt.config.vocab_size})")
        self.backbone = backbone
        self.head = head

    @property
    def tokenizer(self) -> Tokenizer:
        """The backbone's tokenizer (sharing its weights)."""
        return self.backbone.tokenizer

    def tokenize(self, jets: JetBatch, origin: str | None = None) -> ParticleInputs:
        """Token sequences (``tokens`` (B, n_max + 2) int64, ``mask``) of ``jets`` (numpy);
        :class:`~jetfm.data.batch.JetDataError` naming ``origin`` for a jet that keeps no
        particle after the tokenizer's cuts."""
        return self.backbone.prepare(jets, origin)[0]

    def forward(self, inputs: ParticleInputs) -> torch.Tensor:
        """Next-token logits (B, L, vocab_size) of torch token ``inputs`` (as in training,
        :class:`jetfm.tasks.omnijet.GenerativeTask`)."""
        gpt = self.backbone.gpt
        hidden, _ = gpt(inputs.tokens, inputs.mask,
                        coordinates=self.backbone.token_coordinates(inputs.tokens))
        return self.head(hidden, gpt.code_table())

    def generate(self, n_jets: int, **options: Any) -> tuple[JetBatch, dict[str, Any]]:
        """``n_jets`` sampled jets and the sampling figures: :func:`sample_jets` with
        ``options`` (temperature, top_k, batch_size, seed, use_cache, label), on the device of
        the weights unless ``device`` is given."""
        options.setdefault("device", str(next(self.parameters()).device))
        return sample_jets(self.backbone, self.head, n_jets, **options)

    def save(self, path: str | os.PathLike[str], card: Mapping[str, Any] | None = None,
             overwrite: bool = True) -> Path:
        """Write the bundle (:func:`save`)."""
        return save(self, path, card, overwrite=overwrite)


# ------------------------------------------------------------------------------ writing
@dataclass
class _Parts:
    """What one model writes: ``model`` (config.json's section), weights, and the optional
    feature spec and tokenizer."""

    kind: str
    model: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    features: FeatureSpec | None = None
    tokenizer: Tokenizer | None = None
    summary: list[str] = field(default_factory=list)


def _backbone_parts(backbone: Backbone, prefix: str
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], FeatureSpec | None,
                               Tokenizer | None]:
    """A backbone's section, weights (under ``prefix.``), feature spec or tokenizer. A token
    backbone's tokenizer goes to the tokenizer files, its configuration and weights out of
    config.json and model.safetensors."""
    section = {"backbone": backbone.name, "backbone_config": backbone.config_dict()}
    state = backbone.state_dict()
    if isinstance(backbone, OmniJetBackbone):
        tokenizer = backbone.tokenizer
        del section["backbone_config"]["tokenizer"]
        section["tokenizer_fingerprint"] = tokenizer.fingerprint
        return (section, {f"{prefix}.{k}": v for k, v in state.items()
                          if not k.startswith("vqvae.")}, None, tokenizer)
    return section, {f"{prefix}.{k}": v for k, v in state.items()}, backbone.features, None


def _parts(model: Any) -> _Parts:
    """The parts of any model jetfm bundles; ``TypeError`` naming the type otherwise."""
    if isinstance(model, OmniJetGenerator):
        section, tensors, _, tokenizer = _backbone_parts(model.backbone, "backbone")
        tensors.update({f"generative_head.{k}": v for k, v in model.head.state_dict().items()})
        return _Parts("omnijet", section, tensors, None, tokenizer,
                      ["OmniJet-alpha generative model: tokenizer + GPT + next-token head"])
    if isinstance(model, Tagger):
        section, tensors, features, tokenizer = _backbone_parts(model.backbone, "backbone")
        section.update({"head": model.head_name, "head_config": dict(model.head_config),
                        "classes": list(model.classes)})
        tensors.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
        return _Parts("tagger", section, tensors, features, tokenizer,
                      [f"jet tagger: {model.backbone.name} backbone + {model.head_name} head",
                       f"classes: {', '.join(model.classes)}"])
    if isinstance(model, Backbone):
        section, tensors, features, tokenizer = _backbone_parts(model, "backbone")
        return _Parts("backbone", section, tensors, features, tokenizer,
                      [f"{model.name} backbone, embeddings of width {model.dim}"])
    if isinstance(model, Tokenizer):
        return _Parts("tokenizer", {"tokenizer_fingerprint": model.fingerprint}, {}, None,
                      model, [f"{model.kind} tokenizer, {model.codebook_size} codes"])
    if isinstance(model, PETGenerator):
        return _Parts("pet_generator",
                      {"config": asdict(model.config), "classes": list(model.classes)},
                      dict(model.state_dict()), model.spec, None,
                      ["OmniLearn PET generator (particle and jet-level flows)",
                       f"classes: {', '.join(model.classes)}"])
    if isinstance(model, JetEvolutionModel):
        return _Parts(JET_EVOLUTION_KIND,
                      {"config": asdict(model.config), "algorithm": model.algorithm,
                       "n_features": JET_EVOLUTION_FEATURES},
                      dict(model.net.state_dict()), None, None,
                      [f"jet-evolution model ({model.algorithm} declustering trees)"])
    if isinstance(model, ThesisEvolutionModel):
        tensors = {f"vqvae.{k}": v for k, v in model.vqvae.state_dict().items()}
        tensors.update({f"net.{k}": v for k, v in model.net.state_dict().items()})
        return _Parts(THESIS_KIND, {"config": asdict(model.config)}, tensors, None, None,
                      ["the thesis' jet-evolution model (node VQ-VAE + dual-head GPT)"])
    raise TypeError(f"jetfm.save: cannot bundle a {type(model).__name__}; bundles hold a "
                    f"Tagger, Backbone, OmniJetGenerator, Tokenizer, PETGenerator, "
                    f"JetEvolutionModel or ThesisEvolutionModel")


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON data: numpy scalars and arrays as numbers and lists, paths as text,
    non-finite floats as None (as :func:`jetfm.report.json_safe`); ``ValueError`` naming
    ``where`` for anything else."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not text")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    raise ValueError(f"{where}: {type(value).__name__} {value!r} is not JSON data (numbers, "
                     "text, lists, mappings)")


def check_card(card: Mapping[str, Any] | None) -> dict[str, Any]:
    """``card`` (:data:`CARD_KEYS`) as plain JSON data; ``ValueError`` naming the key for an
    unknown key, a value of the wrong type or one that is not JSON data."""
    if card is None:
        return {}
    if not isinstance(card, Mapping):
        raise ValueError(f"card: expected a mapping with keys {list(CARD_KEYS)}, got {card!r}")
    unknown = sorted(set(card) - set(CARD_KEYS))
    if unknown:
        raise ValueError(f"card: unknown keys {unknown}; valid: {list(CARD_KEYS)}")
    for key in ("title", "description", "notes"):
        if key in card and not isinstance(card[key], str):
            raise ValueError(f"card.{key}: expected text, got {card[key]!r}")
    for key in ("data", "training"):
        if key in card and not isinstance(card[key], Mapping | str):
            raise ValueError(f"card.{key}: expected a mapping or text, got {card[key]!r}")
    evaluation = card.get("evaluation")
    if evaluation is not None and not isinstance(evaluation, Mapping) and (
            isinstance(evaluation, str) or not isinstance(evaluation, Sequence)
            or not all(isinstance(row, Mapping) for row in evaluation)):
        raise ValueError(f"card.evaluation: expected rows (a list of mappings) or a mapping "
                         f"of metric -> value, got {evaluation!r}")
    return _plain(dict(card), "card")


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _is_bundle(path: Path) -> bool:
    """Whether ``path`` is an empty directory or a jetfm bundle (a config.json with
    ``format_version``): what :func:`save` may replace."""
    if not path.is_dir():
        return False
    if not any(path.iterdir()):
        return True
    try:
        return "format_version" in json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError, TypeError):
        return False


@contextmanager
def atomic_directory(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a new temporary directory next to ``path``; rename it to ``path`` when the body
    succeeds (``os.replace``, atomic on POSIX within one file system), remove it on any error.

    An existing ``path`` is replaced when ``overwrite`` and it is a bundle or an empty
    directory (moved aside, the new one renamed in, the old one removed; if the rename fails
    the old one is put back). ``FileExistsError`` naming ``path`` otherwise, before anything
    is written.
    """
    path = Path(path)
    if path.exists() and not (overwrite and _is_bundle(path)):
        why = "" if not overwrite else " and is not a jetfm bundle"
        raise FileExistsError(f"{path} exists{why}; not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp's 0700 -> what mkdir would give
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".old"))
            try:
                os.replace(path, old)  # onto the empty directory old (POSIX rename)
            except BaseException:
                old.rmdir()
                raise
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def save(model: Any, path: str | os.PathLike[str], card: Mapping[str, Any] | None = None,
         *, overwrite: bool = True) -> Path:
    """Write ``model`` as a bundle directory ``path`` (module docstring), atomically; returns
    ``path``.

    ``card``: the model card's content (:data:`CARD_KEYS`), kept in ``config.json`` and
    rendered in ``README.md``. Weights are written from any device (copied to the CPU).
    Raises ``TypeError`` for a model jetfm cannot bundle, ``ValueError`` naming the card key
    for a bad card, ``FileExistsError`` when ``path`` exists and is not a bundle (or
    ``overwrite`` is False); nothing is left at ``path`` (or the previous bundle stays) when
    writing fails.
    """
    parts = _parts(model)
    card = check_card(card)
    config: dict[str, Any] = {"jetfm_version": jetfm.__version__,
                              "format_version": FORMAT_VERSION, "kind": parts.kind,
                              "model": _plain(parts.model, "model"), "files": {}}
    if card:
        config["card"] = card
    path = Path(path)
    with atomic_directory(path, overwrite) as tmp:
        header = {"bundle": parts.kind, "format_version": FORMAT_VERSION}
        save_model(tmp / WEIGHTS_FILE, parts.tensors, header)
        config["files"][WEIGHTS_FILE] = file_digest(tmp / WEIGHTS_FILE)
        if parts.features is not None:
            (tmp / FEATURES_FILE).write_text(_json_text(parts.features.to_dict()))
        if parts.tokenizer is not None:
            tokenizer = parts.tokenizer
            save_model(tmp / TOKENIZER_WEIGHTS_FILE,
                       {f"{tokenizer.kind}.{k}": v
                        for k, v in tokenizer.model.state_dict().items()}, header)
            config["files"][TOKENIZER_WEIGHTS_FILE] = file_digest(tmp / TOKENIZER_WEIGHTS_FILE)
            (tmp / TOKENIZER_FILE).write_text(_json_text(tokenizer.meta()))
        (tmp / CONFIG_FILE).write_text(_json_text(config))
        n_values = sum(v.numel() for v in parts.tensors.values())
        if parts.tokenizer is not None:
            n_values += sum(v.numel() for v in parts.tokenizer.model.state_dict().values())
        (tmp / CARD_FILE).write_text(model_card(config, parts, n_values, path.name))
    return path


# ------------------------------------------------------------------------------ model card
def _bullets(value: Any, indent: int = 0) -> list[str]:
    """Markdown bullet lines of plain data (nested mappings indented)."""
    pad = "  " * indent
    if not isinstance(value, Mapping):
        return [f"{pad}- {_cell(value)}"]
    lines = []
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            lines.append(f"{pad}- **{key}**:")
            lines.extend(_bullets(item, indent + 1))
        else:
            lines.append(f"{pad}- **{key}**: {_cell(item)}")
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and all(not isinstance(v, Mapping | list) for v in value):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, Mapping | list):
        return f"`{json.dumps(value)}`"
    return str(value)


def _section(title: str, value: Any, missing: str) -> list[str]:
    lines = ["", f"## {title}", ""]
    if value is None or value == {} or value == []:
        return [*lines, missing]
    if isinstance(value, str):
        return [*lines, value]
    return [*lines, *_bullets(value)]


def model_card(config: Mapping[str, Any], parts: _Parts, n_values: int, name: str) -> str:
    """The bundle's README.md: Hub front matter, what the model is, its inputs, what it was
    trained on, the training budget, the evaluation table and how to load it."""
    card = config.get("card", {})
    front = yaml.safe_dump({"library_name": "jetfm",
                            "tags": ["jetfm", "particle-physics", "jets", parts.kind]},
                           sort_keys=False)
    lines = ["---", front.rstrip(), "---", "", f"# {card.get('title', name)}", ""]
    if "description" in card:
        lines += [card["description"], ""]
    lines += ["## Model", "", *[f"- {line}" for line in parts.summary],
              f"- kind `{parts.kind}`, {n_values:,} stored weight values",
              f"- written by jetfm {config['jetfm_version']} (bundle format "
              f"{config['format_version']})"]
    lines += ["", "## Inputs", ""]
    if parts.tokenizer is not None:
        tok = parts.tokenizer
        lines += [f"- tokenizer `{tok.fingerprint}` ({tok.kind}, {tok.codebook_size} codes, up "
                  f"to {tok.n_max} particles): `{TOKENIZER_FILE}`, `{TOKENIZER_WEIGHTS_FILE}`",
                  f"- particle features: {', '.join(tok.preprocessing.names)}"]
    elif parts.features is not None:
        spec = parts.features
        lines += [f"- particle features ({FEATURES_FILE}): "
                  f"{', '.join(f.name for f in spec.particle) or 'none'}",
                  f"- jet features: {', '.join(f.name for f in spec.jet) or 'none'}",
                  f"- at most {spec.n_max} particles per jet (the softest beyond are dropped)"]
    else:
        lines.append("- fixed by the model (see its module docstring)")
    lines += _section("Training data", card.get("data"), "Not recorded.")
    lines += _section("Training budget", card.get("training"), "Not recorded.")
    lines += ["", "## Evaluation", ""]
    evaluation = card.get("evaluation")
    if not evaluation:
        lines.append("No evaluation given.")
    elif isinstance(evaluation, Mapping):
        lines.append(markdown_table([{"metric": k, "value": v}
                                     for k, v in evaluation.items()]))
    else:
        lines.append(markdown_table(evaluation))
    if "notes" in card:
        lines += ["", "## Notes", "", card["notes"]]
    lines += ["", "## Files", "", markdown_table(
        [{"file": f, "SHA-256 (first 16 hex digits)": d} for f, d in config["files"].items()])]
    lines += ["", "## Usage", "", "```python", "import jetfm", "",
              f'model = jetfm.load("{name}")  # device="cuda" for the GPU', "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ reading
def _version(text: Any, where: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)\S*", text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{where}: {text!r} is not a version (X.Y.Z)")
    return int(match[1]), int(match[2]), int(match[3])


def _keys(data: Any, required: Sequence[str], optional: Sequence[str], where: str) -> None:
    """``ValueError`` naming ``where`` unless ``data`` is a mapping with every ``required``
    key and no key outside ``required`` + ``optional``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid: "
                         f"{sorted([*required, *optional])}")


class _Reader:
    """Reads and checks the files of one bundle (tensors on the CPU; :func:`load` moves the
    model)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_path = root / CONFIG_FILE
        self.config = self.json(CONFIG_FILE)
        where = str(self.config_path)
        _keys(self.config, CONFIG_KEYS[:-1], CONFIG_KEYS[-1:], where)
        fmt = self.config["format_version"]
        if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
            raise ValueError(f"{where}: format_version {fmt!r} is not a whole number >= 1")
        if fmt > FORMAT_VERSION:
            raise ValueError(f"{where}: format_version {fmt} is newer than this jetfm reads "
                             f"({FORMAT_VERSION}); upgrade jetfm")
        found = _version(self.config["jetfm_version"], f"{where}: jetfm_version")
        if found > _version(jetfm.__version__, "jetfm.__version__"):
            raise ValueError(f"{where}: jetfm_version {self.config['jetfm_version']} is newer "
                             f"than this jetfm ({jetfm.__version__}); upgrade jetfm to load "
                             "this bundle")
        if self.config["kind"] not in KINDS:
            raise ValueError(f"{where}: kind: unknown model kind {self.config['kind']!r}; "
                             f"valid: {sorted(KINDS)}")
        self.kind = KINDS[self.config["kind"]]
        self.model = self.config["model"]
        _keys(self.model, self.kind.required, self.kind.optional, f"{where}: model")
        if "card" in self.config:
            try:
                check_card(self.config["card"])
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None

    def where(self, key: str) -> str:
        """``<bundle>/config.json: <key>``, for messages."""
        return f"{self.config_path}: {key}"

    def path(self, name: str) -> Path:
        """The bundle file ``name``; ``FileNotFoundError`` naming it when it is missing."""
        path = self.root / name
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: the bundle has no {name} ({path} is missing; "
                                    "an incomplete or damaged bundle)")
        return path

    def json(self, name: str) -> Any:
        """The JSON file ``name``; ``ValueError`` naming it and the position of a syntax
        error."""
        path = self.path(name)
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None

    def weights(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors of weight file ``name`` (on the CPU), after checking its
        SHA-256 against ``files`` of config.json (``ValueError`` naming the file on a
        mismatch: corruption or replacement)."""
        path = self.path(name)
        recorded = self.config["files"].get(name) if isinstance(self.config["files"],
                                                                Mapping) else None
        if recorded is None:
            raise ValueError(f"{self.where('files')}: no SHA-256 recorded for {name}")
        found = file_digest(path)
        if found != recorded:
            raise ValueError(f"{path}: SHA-256 {found} differs from {recorded} recorded in "
                             f"{self.where('files.' + name)}: the file is corrupted or was "
                             "replaced")
        tensors, _ = load_model(path)
        return tensors

    def check_files(self, names: Sequence[str]) -> None:
        _keys(self.config["files"], names, (), self.where("files"))

    def features(self) -> FeatureSpec:
        path = self.path(FEATURES_FILE)
        return FeatureSpec.from_dict(self.json(FEATURES_FILE), str(path))

    def tokenizer(self) -> Tokenizer:
        """The tokenizer of tokenizer.json + tokenizer.safetensors, its fingerprint checked
        against config.json's ``model.tokenizer_fingerprint``."""
        path = self.path(TOKENIZER_FILE)
        meta = self.json(TOKENIZER_FILE)
        kinds = [k for k in TOKEN_MODELS if isinstance(meta, Mapping) and k in meta]
        if len(kinds) != 1:
            raise ValueError(f"{path}: expected exactly one of the keys {list(TOKEN_MODELS)}, "
                             f"got {sorted(meta) if isinstance(meta, Mapping) else meta!r}")
        kind = kinds[0]
        _keys(meta, ("kind", kind, "preprocessing"), (), str(path))
        if meta["kind"] != "tokenizer":
            raise ValueError(f"{path}: kind: expected 'tokenizer', got {meta['kind']!r}")
        from_mapping(TOKEN_MODELS[kind][1], meta[kind], f"{path}: {kind}")
        preprocessing = _preprocessing(meta["preprocessing"], f"{path}: preprocessing")
        model = build_token_model(meta)
        _load_state(model, prefixed(self.weights(TOKENIZER_WEIGHTS_FILE), kind),
                    self.root / TOKENIZER_WEIGHTS_FILE)
        tokenizer = Tokenizer(model, preprocessing)
        try:
            check_fingerprint(tokenizer.fingerprint, self.model["tokenizer_fingerprint"],
                              f"the model of {self.config_path}")
        except ValueError as err:
            raise ValueError(f"{err} (tokenizer read from {path} and "
                             f"{self.root / TOKENIZER_WEIGHTS_FILE})") from None
        return tokenizer


def _preprocessing(data: Any, where: str) -> Preprocessing:
    """A tokenizer's preprocessing from plain data; ``ValueError`` naming ``where`` and the
    key (the checks of :class:`Preprocessing` and :class:`FeatureTransform`)."""
    _keys(data, ("features", "n_max"), ("subjet_order", "subjet_frame"), where)
    if not isinstance(data["features"], list):
        raise ValueError(f"{where}: features: expected a list, got {data['features']!r}")
    features = []
    for i, item in enumerate(data["features"]):
        feature = from_mapping(FeatureTransform, item, f"{where}: features[{i}]")
        # checked, not converted: the values enter the tokenizer's fingerprint as written
        if not isinstance(feature.name, str):
            raise ValueError(f"{where}: features[{i}].name: {feature.name!r} is not text")
        number(f"{where}: features[{i}].shift", feature.shift)
        number(f"{where}: features[{i}].scale", feature.scale, POSITIVE)
        for key in ("min", "max"):
            number(f"{where}: features[{i}].{key}", getattr(feature, key), Rule(optional=True))
        features.append(feature)
    return from_mapping(Preprocessing, {**data, "features": features}, where)


def _load_state(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """``module.load_state_dict(state)`` (strict); ``ValueError`` naming ``path`` with the
    missing, unexpected or mis-shaped weights."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        text = " ".join(str(err).split())
        raise ValueError(f"{path}: the weights do not fit the model configured in "
                         f"{CONFIG_FILE}: {text}") from None


def _build_backbone(reader: _Reader, tensors: Mapping[str, torch.Tensor]) -> Backbone:
    """The trained backbone of config.json's model section (``backbone.`` weights)."""
    model = reader.model
    try:
        cls = backbone_class(model["backbone"])
    except ValueError as err:
        raise ValueError(f"{reader.where('model.backbone')}: {err}") from None
    config = model["backbone_config"]
    where = reader.where("model.backbone_config")
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {config!r}")
    state = dict(prefixed(tensors, "backbone"))
    if issubclass(cls, OmniJetBackbone):
        if "tokenizer" in config:
            raise ValueError(f"{where}: unknown key 'tokenizer' (a bundle keeps the tokenizer "
                             f"in {TOKENIZER_FILE})")
        if "tokenizer_fingerprint" not in model:
            raise ValueError(f"{reader.where('model')}: missing key 'tokenizer_fingerprint'")
        reader.check_files((WEIGHTS_FILE, TOKENIZER_WEIGHTS_FILE))
        tokenizer = reader.tokenizer()
        backbone = cls.from_config({**config, "tokenizer": tokenizer.meta()}, FeatureSpec(),
                                   where)
        state.update({f"vqvae.{k}": v for k, v in tokenizer.model.state_dict().items()})
    else:
        if "tokenizer_fingerprint" in model:
            raise ValueError(f"{reader.where('model')}: unknown key 'tokenizer_fingerprint' "
                             f"(backbone {cls.name!r} takes no tokenizer)")
        reader.check_files((WEIGHTS_FILE,))
        backbone = cls.from_config(config, reader.features(), where)
    _load_state(backbone, state, reader.root / WEIGHTS_FILE)
    return backbone


def _load_backbone(reader: _Reader) -> Backbone:
    return _build_backbone(reader, reader.weights(WEIGHTS_FILE))


def _load_tagger(reader: _Reader) -> Tagger:
    tensors = reader.weights(WEIGHTS_FILE)
    backbone = _build_backbone(reader, tensors)
    model = reader.model
    if model["head"] not in HEADS:
        raise ValueError(f"{reader.where('model.head')}: unknown head {model['head']!r}; "
                         f"valid: {sorted(HEADS)}")
    options = set(inspect.signature(HEADS[model["head"]]).parameters) - {"dim", "n_classes"}
    _keys(model["head_config"], (), sorted(options), reader.where("model.head_config"))
    try:
        tagger = Tagger(backbone, model["classes"], model["head"], model["head_config"])
    except ValueError as err:
        raise ValueError(f"{reader.config_path}: model: {err}") from None
    _load_state(tagger.head, prefixed(tensors, "head"), reader.root / WEIGHTS_FILE)
    return tagger


def _load_omnijet(reader: _Reader) -> OmniJetGenerator:
    if reader.model["backbone"] != OmniJetBackbone.name:
        raise ValueError(f"{reader.where('model.backbone')}: an omnijet bundle holds an "
                         f"'omnijet' backbone, got {reader.model['backbone']!r}")
    tensors = reader.weights(WEIGHTS_FILE)
    backbone = _build_backbone(reader, tensors)
    head = NextTokenHead.for_backbone(backbone.gpt)
    _load_state(head, prefixed(tensors, "generative_head"), reader.root / WEIGHTS_FILE)
    return OmniJetGenerator(backbone, head)


def _load_tokenizer(reader: _Reader) -> Tokenizer:
    reader.check_files((WEIGHTS_FILE, TOKENIZER_WEIGHTS_FILE))
    if reader.weights(WEIGHTS_FILE):
        raise ValueError(f"{reader.root / WEIGHTS_FILE}: a tokenizer bundle keeps its weights "
                         f"in {TOKENIZER_WEIGHTS_FILE}; {WEIGHTS_FILE} must be empty")
    return reader.tokenizer()


def _load_pet_generator(reader: _Reader) -> PETGenerator:
    reader.check_files((WEIGHTS_FILE,))
    config = from_mapping(PETGeneratorConfig, reader.model["config"],
                          reader.where("model.config"))
    spec = reader.features()
    try:
        model = PETGenerator(config, spec, reader.model["classes"])
    except ValueError as err:
        raise ValueError(f"{reader.config_path}: model: {err}") from None
    _load_state(model, reader.weights(WEIGHTS_FILE), reader.root / WEIGHTS_FILE)
    return model


def _load_jet_evolution(reader: _Reader) -> JetEvolutionModel:
    reader.check_files((WEIGHTS_FILE,))
    model = reader.model
    if model["n_features"] != JET_EVOLUTION_FEATURES:
        raise ValueError(f"{reader.where('model.n_features')}: made with "
                         f"{model['n_features']} node features, this jetfm uses "
                         f"{JET_EVOLUTION_FEATURES}; retrain the model")
    from jetfm.physics.clustering import ALGORITHMS

    if model["algorithm"] not in ALGORITHMS:
        raise ValueError(f"{reader.where('model.algorithm')}: unknown jet algorithm "
                         f"{model['algorithm']!r}; valid: {list(ALGORITHMS)}")
    net = JetEvolution(from_mapping(EvolutionConfig, model["config"],
                                    reader.where("model.config")))
    _load_state(net, reader.weights(WEIGHTS_FILE), reader.root / WEIGHTS_FILE)
    return JetEvolutionModel(net, model["algorithm"])


def _load_thesis(reader: _Reader) -> ThesisEvolutionModel:
    reader.check_files((WEIGHTS_FILE,))
    config = from_mapping(ThesisConfig, reader.model["config"], reader.where("model.config"))
    from jetfm.models.gpt import GPTConfig

    vqvae, net = VQVAE(VQVAEConfig(**config.vqvae)), ThesisEvolutionNet(GPTConfig(**config.gpt))
    tensors = reader.weights(WEIGHTS_FILE)
    _load_state(vqvae, prefixed(tensors, "vqvae"), reader.root / WEIGHTS_FILE)
    _load_state(net, prefixed(tensors, "net"), reader.root / WEIGHTS_FILE)
    return ThesisEvolutionModel(vqvae, net, config)


@dataclass(frozen=True)
class _Kind:
    """A bundle kind: config.json's ``model`` keys, its loader, whether it runs on the CPU
    only (numpy sampling loops)."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    load: Callable[[_Reader], Any]
    cpu_only: bool = False


_BACKBONE_KEYS = ("backbone", "backbone_config")
KINDS: dict[str, _Kind] = {
    "tagger": _Kind((*_BACKBONE_KEYS, "head", "head_config", "classes"),
                    ("tokenizer_fingerprint",), _load_tagger),
    "backbone": _Kind(_BACKBONE_KEYS, ("tokenizer_fingerprint",), _load_backbone),
    "omnijet": _Kind((*_BACKBONE_KEYS, "tokenizer_fingerprint"), (), _load_omnijet),
    "tokenizer": _Kind(("tokenizer_fingerprint",), (), _load_tokenizer),
    "pet_generator": _Kind(("config", "classes"), (), _load_pet_generator),
    JET_EVOLUTION_KIND: _Kind(("config", "algorithm", "n_features"), (), _load_jet_evolution,
                              cpu_only=True),
    THESIS_KIND: _Kind(("config",), (), _load_thesis, cpu_only=True),
}
"""Bundle kinds (config.json ``kind``) and how each loads."""


def _target_device(device: str | torch.device | None) -> torch.device:
    """None -> CPU; ``"auto"`` -> CUDA when available, else CPU; else the device itself."""
    if device is None:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{device!r} is not a device; use cpu, cuda, cuda:N or mps") from None


def load(path: str | os.PathLike[str], device: str | torch.device | None = None) -> Any:
    """The model of bundle directory ``path``, ready to use: eval mode, weights on ``device``
    (None: the CPU; ``"auto"``: CUDA when available; any bundle loads on any device, whatever
    device wrote it). Only JSON and safetensors are read: nothing is unpickled.

    Returns a :class:`~jetfm.models.tagger.Tagger`, :class:`~jetfm.models.backbone.Backbone`,
    :class:`OmniJetGenerator`, :class:`~jetfm.models.tokenizer.Tokenizer`,
    :class:`~jetfm.models.pet_generator.PETGenerator`,
    :class:`~jetfm.models.jet_evolution.JetEvolutionModel` or
    :class:`~jetfm.models.thesis_evolution.ThesisEvolutionModel` (module docstring).

    Raises ``FileNotFoundError`` naming the bundle or the missing file; ``ValueError`` naming
    the file and key for a newer jetfm or bundle format, a corrupted weight file, an unknown
    kind / backbone / head, a missing or unknown key, weights that do not fit, a tokenizer of
    another fingerprint, a device this machine lacks, or a GPU device for a CPU-only kind.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no model bundle {root}")
    if not root.is_dir():
        raise ValueError(f"{root} is a file, not a model bundle directory (a single-file jetfm "
                         "model reads with jetfm.bundle.from_file)")
    target = _target_device(device)
    reader = _Reader(root)
    if reader.kind.cpu_only and target.type != "cpu":
        raise ValueError(f"{reader.where('kind')}: {reader.config['kind']} models run on the "
                         f"CPU only (their sampling loops are numpy); load with device='cpu', "
                         f"not {str(device)!r}")
    target = check_device(target)
    model = reader.kind.load(reader)
    if isinstance(model, Tokenizer):
        model.model.to(target).eval()
    elif isinstance(model, nn.Module):
        model.to(target).eval()
    return model


# ------------------------------------------------------------------------------ old files
def from_file(path: str | os.PathLike[str], tokenizer: str | os.PathLike[str] | None = None,
              device: str | torch.device = "cpu") -> Any:
    """The model of a single-file jetfm model (the formats the studies write: tagger,
    backbone, generative OmniJet backbone, tokenizer, PET generator, jet-evolution and
    thesis files), in eval mode on ``device``, ready for :func:`save`.

    ``tokenizer``: a tokenizer file; for an OmniJet backbone file its fingerprint must be the
    one the backbone records (``ValueError`` naming both otherwise). A generative OmniJet file
    gives an :class:`OmniJetGenerator`. ``FileNotFoundError`` / ``ValueError`` naming the file
    when it is missing or not a jetfm model file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a jetfm model file ({err})") from None
    meta = json.loads(header.get("jetfm", "{}"))
    kind = meta.get("kind")
    if kind == "backbone" and meta.get("generative"):
        expected = None if tokenizer is None else Tokenizer.load(tokenizer, device)
        return OmniJetGenerator(*load_generative(path, expected, device))
    if kind == "backbone":
        backbone = load_backbone(path, device=device)
        if tokenizer is not None:
            check_fingerprint(Tokenizer.load(tokenizer).fingerprint,
                              meta.get("tokenizer_fingerprint"), f"backbone {path}")
        return backbone
    loaders: dict[str, Callable[[], Any]] = {
        "tagger": lambda: load_tagger(path, device),
        "tokenizer": lambda: Tokenizer.load(path, device),
        "pet_generator": lambda: load_generator(path, device),
        JET_EVOLUTION_KIND: lambda: JetEvolutionModel.load(path),
        THESIS_KIND: lambda: load_thesis_model(path),
    }
    if kind not in loaders:
        raise ValueError(f"{path}: not a jetfm model file (kind={kind!r}); valid kinds: "
                         f"{sorted([*loaders, 'backbone'])}")
    return loaders[kind]()


__all__ = ["CARD_KEYS", "FORMAT_VERSION", "KINDS", "OmniJetGenerator", "atomic_directory",
           "check_card", "from_file", "load", "model_card", "save"]
