"""OmniLearn's PET generator: flow conventions, padding invariance, guidance, a toy with a
known answer, files, joint pre-training and its exact resume."""

from __future__ import annotations

import sys
from pathlib import Path

import awkward as ak
import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging

sys.path.insert(0, str(Path(__file__).parent))
from tagging_jets import prong_jets  # noqa: E402

from jetfm.data import JetBatch  # noqa: E402
from jetfm.data.classes import class_index  # noqa: E402
from jetfm.metrics.generation import wasserstein1  # noqa: E402
from jetfm.models.backbone import load_backbone  # noqa: E402
from jetfm.models.pet_generator import (  # noqa: E402
    PETGenerator,
    PETGeneratorConfig,
    load_generator,
)
from jetfm.models.tagger import Tagger  # noqa: E402
from jetfm.nn.flow import flow_loss, guided, interpolate, sample_midpoint, velocity_target  # noqa: E402
from jetfm.tasks.omnilearn import (  # noqa: E402
    OmniLearnConfig,
    OmniLearnTask,
    generator_inputs,
    train_generator,
)
from jetfm.tasks.training import TrainConfig, fit  # noqa: E402

SMALL = {"body": {"dim": 32, "num_layers": 2, "num_heads": 4, "k": 4}, "head_blocks": 1,
         "n_max": 32, "jet_hidden": 32}


def two_class(n: int = 48, seed: int = 0) -> JetBatch:
    return JetBatch.concatenate([prong_jets(n, 1, "QCD", seed=seed),
                                 prong_jets(n, 3, "Tbqq", seed=seed + 1)])


def small_generator(jets: JetBatch | None = None, seed: int = 0) -> PETGenerator:
    torch.manual_seed(seed)
    return PETGenerator.from_jets(jets or two_class(), ["QCD", "Tbqq"],
                                  PETGeneratorConfig(**SMALL)).eval()


# ------------------------------------------------------------------------------ flow
def test_straight_path_and_exact_velocity_give_zero_loss():
    """z_t moves on a straight line from data (t=0) to noise (t=1) at the target velocity,
    and the exact per-sample velocity has zero loss."""
    x, eps = torch.randn(5, 7, 3), torch.randn(5, 7, 3)
    t = torch.rand(5)
    z = interpolate(x, eps, t)
    torch.testing.assert_close(interpolate(x, eps, torch.zeros(5)), x)
    torch.testing.assert_close(interpolate(x, eps, torch.ones(5)), eps)
    dt = 1e-3
    torch.testing.assert_close((interpolate(x, eps, t + dt) - z) / dt, velocity_target(x, eps),
                               atol=1e-2, rtol=1e-2)
    mask = torch.rand(5, 7) < 0.6
    mask[:, 0] = True
    assert torch.all(flow_loss(velocity_target(x, eps), velocity_target(x, eps), mask) == 0)


def test_loss_is_per_real_particle():
    pred, target = torch.ones(2, 4, 3), torch.zeros(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    torch.testing.assert_close(flow_loss(pred, target, mask), torch.tensor([3.0, 3.0]))


def test_midpoint_sampler_follows_the_exact_field_of_a_point_mass():
    """Data at one point mu: the exact field (z - mu) / t is linear along the straight paths,
    which the midpoint rule integrates exactly, so every sample lands on mu."""
    mu = torch.tensor([0.3, -1.2, 2.0])
    noise = torch.randn(6, 3)
    out = sample_midpoint(lambda z, t: (z - mu) / t[:, None], noise, steps=5)
    torch.testing.assert_close(out, mu.expand(6, 3), atol=1e-5, rtol=0)


def test_guidance_weight_zero_is_the_conditional_field():
    model = small_generator()
    inputs = model.encode(two_class(4)).to_torch()
    z, t = torch.randn_like(inputs.features), torch.rand(len(inputs))
    label = torch.tensor([0, 1] * 4)[: len(inputs)]
    with torch.no_grad():
        conditional = model.velocity(z, t, inputs.mask, inputs.jet, label)
        free = model.velocity(z, t, inputs.mask, inputs.jet, torch.full_like(label, 2))
        torch.testing.assert_close(
            model.velocity(z, t, inputs.mask, inputs.jet, label, guidance=0.0), conditional)
        torch.testing.assert_close(
            model.velocity(z, t, inputs.mask, inputs.jet, label, guidance=2.0),
            3 * conditional - 2 * free)
    torch.testing.assert_close(guided(conditional, free, 0.0), conditional)
    assert not torch.allclose(conditional, free)  # the label matters


# ------------------------------------------------------------------------------ padding
def _padded(x: torch.Tensor, extra: int, fill: float) -> torch.Tensor:
    pad = torch.full((x.shape[0], extra, *x.shape[2:]), fill, dtype=x.dtype)
    return torch.cat([x, pad], dim=1)


def test_padding_changes_neither_velocity_nor_classifier_nor_loss():
    model = small_generator()
    jets = two_class(6)
    inputs = model.encode(jets).to_torch()
    used = int(inputs.mask.sum(1).max())
    features, mask, jet = inputs.features[:, :used], inputs.mask[:, :used], inputs.jet
    label = torch.as_tensor(model.labels(jets))
    extra = 32 - used  # up to the generator's n_max
    assert extra >= 2
    garbage = _padded(features, extra, 7.0)
    more_mask = _padded(mask, extra, False)
    t = torch.rand(len(jets))
    with torch.no_grad():
        v = model.velocity(features, t, mask, jet, label)
        v_more = model.velocity(garbage, t, more_mask, jet, label)
        torch.testing.assert_close(v_more[:, :used], v, atol=1e-5, rtol=1e-5)
        assert torch.all(v_more[:, used:] == 0)
        torch.testing.assert_close(model.classify(garbage, more_mask, jet),
                                   model.classify(features, mask, jet), atol=1e-5, rtol=1e-5)
        loss = model.losses(features, mask, jet, label, torch.Generator().manual_seed(3))
        loss_more = model.losses(garbage, more_mask, jet, label,
                                 torch.Generator().manual_seed(3))
    for key in loss:
        torch.testing.assert_close(loss_more[key], loss[key], atol=1e-5, rtol=1e-5)


def test_generated_particles_do_not_depend_on_the_batch_padding():
    """Jet 0 sampled next to a short jet or next to a long one (more padded slots for it)
    gets the same particles."""
    model = small_generator()
    inputs = model.encode(two_class(6)).to_torch()
    order = torch.argsort(inputs.mask.sum(1))
    short, long_ = int(order[0]), int(order[-1])
    first = int(order[len(order) // 2])
    label = torch.tensor([0, 0])
    a, mask_a = model.sample_particles(inputs.jet[[first, short]], label, steps=3,
                                       generator=torch.Generator().manual_seed(1))
    b, mask_b = model.sample_particles(inputs.jet[[first, long_]], label, steps=3,
                                       generator=torch.Generator().manual_seed(1))
    n = int(mask_a[0].sum())
    assert n == int(mask_b[0].sum()) and b.shape[1] > n
    torch.testing.assert_close(a[0, :n], b[0, :n], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ data and files
def test_encode_decode_round_trip_in_the_generator_frame():
    model = small_generator()
    jets = two_class(5)
    framed = model.frame(jets)
    np.testing.assert_array_equal(framed.n_particles, np.minimum(jets.n_particles, 32))
    again = model.frame(framed)
    np.testing.assert_allclose(again.jet_mass, framed.jet_mass, rtol=1e-4)
    np.testing.assert_allclose(framed.jet_pt, jets.jet_pt, rtol=1e-3)  # all particles kept
    np.testing.assert_allclose(framed.jet_mass, jets.jet_mass, rtol=1e-3)  # massless inputs


def test_labels_outside_the_classes_are_refused():
    model = small_generator()
    wz = prong_jets(3, 2, "Wqq")
    with pytest.raises(ValueError, match="Wqq.*not among the generator's classes"):
        model.labels(wz, "w.parquet")
    with pytest.raises(ValueError, match="not one of the generator's classes"):
        model.generate(2, "Wqq")


def test_file_round_trip_and_body_as_tagger_backbone(tmp_path):
    model = small_generator()
    path = model.save(tmp_path / "g.safetensors")
    again = load_generator(path)
    one = model.generate(5, "Tbqq", steps=3, seed=4)
    two = again.generate(5, "Tbqq", steps=3, seed=4)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(one.pt)),
                               ak.to_numpy(ak.flatten(two.pt)), rtol=1e-5)
    from jetfm.models.backbone import save_backbone
    save_backbone(tmp_path / "body.safetensors", model.body)
    body = load_backbone(tmp_path / "body.safetensors", expect="pet")
    tagger = Tagger(body, ["QCD", "Tbqq"])
    probs = tagger.predict_proba(two_class(3))
    assert probs.shape == (6, 2)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


# ------------------------------------------------------------------------------ training
def mixture_jets(n_jets: int, seed: int) -> JetBatch:
    """Particles i.i.d. from a fixed 2-D Gaussian mixture in (eta, phi) (centres (+-0.25,
    +-0.1), width 0.04), 6-10 per jet, pT exponential: a known answer for the generator."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(6, 11, n_jets)
    total = int(counts.sum())
    comp = rng.integers(0, 2, total)
    eta = np.where(comp, 0.25, -0.25) + rng.normal(0, 0.04, total)
    phi = np.where(comp, 0.1, -0.1) + rng.normal(0, 0.04, total)
    pt = rng.exponential(20.0, total) + 1.0

    def ragged(x: np.ndarray) -> ak.Array:
        return ak.unflatten(x, counts)

    return JetBatch.from_ptetaphi(ragged(pt), ragged(eta), ragged(phi), 0.0,
                                  label=np.full(n_jets, class_index("QCD")))


def test_generator_reproduces_a_gaussian_mixture_toy(tmp_path):
    """Trained for ~10 s on 512 toy jets, the generated particle angles are within 3x the
    floor (W1 between independent truth samples of the generated size) of the truth, both
    modes are populated in the right proportion and the multiplicity stays near 6..10."""
    train, val, truth = mixture_jets(512, 0), mixture_jets(128, 1), mixture_jets(400, 2)
    floors = [mixture_jets(400, s) for s in (3, 4, 5)]
    config = OmniLearnConfig(
        classes=["QCD"], ema_decay=None,
        generator={**SMALL, "n_max": 16},
        training={"max_epochs": 30, "batch_size": 32, "progress": False, "lr": 3e-3})
    model = train_generator(train, val, config, tmp_path)
    generated = model.generate(400, "QCD", steps=16, seed=0)
    reference = model.frame(truth)

    def flat(batch: JetBatch, name: str) -> np.ndarray:
        return ak.to_numpy(ak.flatten(getattr(batch, name)))

    for name in ("eta_rel", "phi_rel"):
        floor = np.mean([wasserstein1(flat(model.frame(f), name), flat(reference, name))
                         for f in floors])
        w1 = wasserstein1(flat(generated, name), flat(reference, name))
        assert w1 < 3 * floor, (name, w1, floor)
        assert abs((flat(generated, name) > 0).mean() - 0.5) < 0.05
    def gap(batch: JetBatch) -> float:  # particles between the two modes
        return float(np.mean(np.abs(flat(batch, "eta_rel")) < 0.1))

    assert abs(gap(generated) - gap(reference)) < 0.05, (gap(generated), gap(reference))
    n = generated.n_particles  # uniform on 6..10 in the truth
    assert abs(n.mean() - 8) < 0.4 and np.mean((n >= 5) & (n <= 11)) > 0.95


class _Interrupt(L.Callback):
    """Stops a run with an error when its second epoch starts (after the checkpoint of the
    first)."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("interrupted")


def test_joint_pretraining_resumes_exactly(tmp_path):
    """Two epochs in one go, or a run interrupted after one epoch and resumed from its
    checkpoint: the same validation losses and the same (EMA) weights."""
    train_jets, val_jets = two_class(32, seed=0), two_class(8, seed=5)
    start = small_generator(train_jets)
    train = generator_inputs(start, train_jets, "train")
    val = generator_inputs(start, val_jets, "val")
    config = TrainConfig(max_epochs=2, batch_size=16, progress=False)

    def task() -> OmniLearnTask:
        out = OmniLearnTask(start.meta())
        out.model.load_state_dict(start.state_dict())
        return out

    def ema() -> EMAWeightAveraging:
        return EMAWeightAveraging(decay=0.9)

    straight = task()
    fit(straight, train, val, config, tmp_path / "a", callbacks=[ema()])
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(task(), train, val, config, tmp_path / "b", callbacks=[ema(), _Interrupt()])
    resumed = task()
    fit(resumed, train, val, config, tmp_path / "b", callbacks=[ema()],
        resume=tmp_path / "b" / "checkpoints" / "last.ckpt")
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q)
    a = pd.read_csv(tmp_path / "a" / "logs" / "metrics.csv")
    b = pd.read_csv(tmp_path / "b" / "logs" / "metrics.csv")
    np.testing.assert_allclose(b["val/loss"].dropna(), a["val/loss"].dropna(), rtol=1e-6)
    assert len(a["val/loss"].dropna()) == 2
    for term in ("val/class", "val/flow", "val/class_noisy", "val/jet_flow"):
        assert a[term].notna().sum() == 2


def test_finetuning_to_a_new_class_keeps_the_shared_rows(tmp_path):
    train, val = two_class(16), two_class(4, seed=7)
    base = train_generator(train, val, OmniLearnConfig(
        generator=SMALL, ema_decay=None,
        training={"max_epochs": 1, "batch_size": 16, "progress": False}), tmp_path / "base")
    wjets = prong_jets(24, 2, "Wqq", seed=3)
    tuned = train_generator(wjets, prong_jets(8, 2, "Wqq", seed=4), OmniLearnConfig(
        classes=["Wqq", "QCD"], init=str(tmp_path / "base" / "generator.safetensors"),
        ema_decay=None, training={"max_epochs": 1, "batch_size": 8, "progress": False,
                                  "lr": 1e-12}), tmp_path / "tuned")
    assert tuned.classes == ("Wqq", "QCD")
    # lr ~ 0: the body and the shared label row are the pre-trained ones
    torch.testing.assert_close(tuned.label.weight[1], base.label.weight[0])
    torch.testing.assert_close(tuned.label.weight[-1], base.label.weight[-1])
    for p, q in zip(tuned.body.parameters(), base.body.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert len(tuned.generate(3, "Wqq", steps=2)) == 3


def test_lion_moves_every_weight_by_the_learning_rate(tmp_path):
    """``optimizer: lion`` is Lion (Chen et al. 2023): without weight decay its first step
    moves each weight that has a gradient by exactly the learning rate (a sign update)."""
    start = small_generator()
    data = generator_inputs(start, two_class(8), "train")
    task = OmniLearnTask(start.meta(), optimizer="lion")
    task.model.load_state_dict(start.state_dict())
    before = [p.detach().clone() for p in task.model.parameters()]
    fit(task, data, data, TrainConfig(max_steps=1, max_epochs=1, batch_size=len(data),
                                      lr=1e-3, weight_decay=0.0, progress=False), tmp_path)
    moved = torch.cat([(p.detach() - b).abs().flatten()
                       for p, b in zip(task.model.parameters(), before, strict=True)])
    changed = moved[moved > 0]
    assert len(changed) > 0.5 * len(moved)
    torch.testing.assert_close(changed, torch.full_like(changed, 1e-3), rtol=1e-3, atol=1e-7)


def test_same_seed_same_jets_whatever_the_batch_size():
    model = small_generator()
    one = model.generate(9, "Tbqq", steps=2, seed=3)
    two = model.generate(9, "Tbqq", steps=2, seed=3, batch_size=4)
    np.testing.assert_array_equal(one.n_particles, two.n_particles)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(one.pt)),
                               ak.to_numpy(ak.flatten(two.pt)), rtol=1e-4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_jets": 0}, "n_jets must be a whole number >= 1"),
    ({"n_jets": 2.5}, "n_jets must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"steps": 0}, "steps must be"),
    ({"guidance": -1.0}, "guidance"),
    ({"guidance": float("nan")}, "guidance"),
    ({"jet": np.full((2, 4), np.nan)}, "non-finite"),
])
def test_bad_generate_arguments_are_refused(kwargs, message):
    model = small_generator()
    call = {"n_jets": 2, "cls": "Tbqq", "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        model.generate(**call)


def test_training_refuses_what_it_cannot_learn_from(tmp_path):
    jets = two_class(8)
    config = OmniLearnConfig(generator=SMALL, training={"max_epochs": 1, "progress": False})
    with pytest.raises(ValueError, match="validation jets: no jets"):
        train_generator(jets, jets[np.zeros(len(jets), dtype=bool)], config, tmp_path)
    three = OmniLearnConfig(classes=["QCD", "Tbqq", "Wqq"], generator=SMALL,
                            training={"max_epochs": 1, "progress": False})
    with pytest.raises(ValueError, match=r"classes \['Wqq'\] have no training jets"):
        train_generator(jets, jets, three, tmp_path)
    for classes in (["QCD", "Top"], "QCD", [], ["QCD", "QCD"]):
        with pytest.raises(ValueError, match="classes"):
            OmniLearnConfig(classes=classes)


def test_truncation_to_n_max_is_counted(tmp_path, capsys):
    jets = JetBatch.concatenate([prong_jets(8, 1, "QCD", n_min=40, n_max=50),
                                 prong_jets(8, 3, "Tbqq", seed=1, n_min=40, n_max=50)])
    config = OmniLearnConfig(generator=SMALL, ema_decay=None,
                             training={"max_epochs": 1, "progress": False})
    train_generator(jets, jets, config, tmp_path)
    assert "beyond n_max" in capsys.readouterr().out
