"""The synth classifier: metrics from its softmax, training to ≥ 95 % held-out accuracy, and
FAD(real, real-other-seed) < FAD(real, noise) on its embeddings."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from nextscale.eval.classifier_metrics import accuracy_by_class, class_accuracy, confusions, inception_score, label_kl
from nextscale.eval.embeddings import get_embedding
from nextscale.eval.embeddings.synth import SynthClassifier, split_windows
from nextscale.eval.evaluate import evaluate_sets


def test_inception_score_closed_forms():
    onehot = np.eye(4)[np.arange(40) % 4]
    assert inception_score(onehot) == pytest.approx(4.0, rel=1e-6)  # confident and balanced: = #classes
    assert inception_score(np.full((10, 4), 0.25)) == pytest.approx(1.0)  # uninformative: 1
    assert inception_score(np.eye(4)[np.zeros(10, int)]) == pytest.approx(1.0, rel=1e-6)  # one class only


def test_label_kl_and_accuracy_by_hand():
    real = np.array([[0.5, 0.5], [0.5, 0.5]])
    gen = np.array([[0.9, 0.1], [0.7, 0.3]])
    assert label_kl(real, gen) == pytest.approx(0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2))
    assert label_kl(real, real) == pytest.approx(0.0, abs=1e-12)
    acc, n = class_accuracy(gen, [0, 1])
    assert (acc, n) == (0.5, 2)
    acc, n = class_accuracy(gen, [-1, 0])
    assert (acc, n) == (1.0, 1)


def test_accuracy_by_class_counts_each_label_on_its_own():
    probs = np.eye(3)[[0, 0, 1, 2, 2, 0]]            # predictions 0 0 1 2 2 0
    labels = [0, 1, 1, 2, -1, 2]                     # class 0: 1/1, class 1: 1/2, class 2: 1/2; -1 left out
    assert accuracy_by_class(probs, labels, ["a", "b", "c", "d"]) == {"a": 1.0, "b": 0.5, "c": 0.5}


def test_confusions_name_what_each_class_was_taken_for_most_first():
    probs = np.eye(4)[[1, 3, 3, 0, 2, 1, 0, 0]]      # predictions 1 3 3 0 2 1 0 0
    labels = [0, 0, 0, 0, 2, 2, -1, 3]               # a -> d twice, b once; c right and -> b; unlabelled left out
    assert confusions(probs, labels, ["a", "b", "c", "d"]) == {"a": {"d": 2, "b": 1}, "c": {"b": 1}, "d": {"a": 1}}
    assert list(confusions(probs, labels, ["a", "b", "c", "d"])["a"]) == ["d", "b"]


def test_split_windows():
    wav = torch.arange(10.0).reshape(1, 1, 10)
    assert split_windows(wav, 4).shape == (2, 1, 4) and torch.equal(split_windows(wav, 4)[1, 0], torch.arange(4.0, 8.0))
    assert split_windows(wav, 16).shape == (1, 1, 16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nextscale.eval.train_classifier import train_classifier

    out = tmp_path_factory.mktemp("clf") / "classifier"
    summary = train_classifier(out, n_train=480, n_heldout=240, steps=200, batch_size=32, seed=0, device="cpu",
                               progress=False)
    return out, summary


@pytest.mark.slow
def test_classifier_reaches_accuracy_and_reloads(trained):
    out, summary = trained
    assert summary["heldout_accuracy"] >= 0.95, summary
    assert summary["final_loss"] < 0.5 * summary["first_loss"], summary
    model = SynthClassifier.from_pretrained(out)
    backend = get_embedding("synth", classifier=str(out))
    wav = torch.randn(3, 1, 24000) * 0.1
    feats = backend.embed(wav)
    assert feats.shape == (3, model.config.feature_dim)
    with torch.no_grad():
        torch.testing.assert_close(backend.probabilities(feats), torch.softmax(model(wav), -1))
    # robust to a noise floor (-60 dB) such as generated audio may have
    from nextscale.eval.train_classifier import render_corpus

    audio, labels, _ = render_corpus(96, 5, "", progress=False)
    with torch.no_grad():
        noisy = model(audio + 1e-3 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(0))).argmax(-1)
    assert float((noisy == labels).float().mean()) >= 0.9


def test_fad_real_vs_real_is_below_real_vs_noise(trained, tmp_path):
    from nextscale.data.synth import SynthDataset

    def write(directory, clips):
        directory.mkdir()
        for i, x in enumerate(clips):
            sf.write(directory / f"{i:03d}.wav", x.reshape(-1).numpy(), 24000)
        return directory

    real = write(tmp_path / "real", [SynthDataset(96, 11)[i]["audio"] for i in range(96)])
    other = write(tmp_path / "other", [SynthDataset(96, 12)[i]["audio"] for i in range(96)])
    rng = np.random.default_rng(0)
    noise = write(tmp_path / "noise", [torch.from_numpy((0.2 * rng.normal(size=24000)).astype(np.float32))
                                       for _ in range(96)])
    backend = get_embedding("synth", classifier=str(trained[0]))
    same = evaluate_sets(real, other, backend, tmp_path / "cache", progress=False)
    bad = evaluate_sets(real, noise, backend, tmp_path / "cache", progress=False)
    print(f"FAD(synth) real vs real-other-seed: {same['fad']:.3f}; real vs noise: {bad['fad']:.3f}")
    assert same["fad"] < 0.25 * bad["fad"]
    assert bad["inception_score"] < same["inception_score"]
