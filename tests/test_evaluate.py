"""Top-k, per-class and ReaL-style accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from resnets.errors import ResnetsError
from resnets.evaluate import Accuracy, label_map, load_label_sets, logits_loop, run_accuracy


def _logits(rows: list[list[int]], num_classes: int = 6) -> torch.Tensor:
    """Logits whose ranking is the given class order (first = highest)."""
    out = torch.zeros(len(rows), num_classes)
    for r, order in enumerate(rows):
        for rank, cls in enumerate(order):
            out[r, cls] = 10.0 - rank
    return out


def test_topk_counts_and_per_class():
    acc = Accuracy(6, topk=(1, 5))
    logits = _logits([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [5, 4, 3, 2, 1], [2, 3, 4, 5, 0]])
    acc.update(logits, torch.tensor([0, 0, 0, 1]))
    assert acc.n == 4
    assert acc.top(1) == pytest.approx(25.0)  # only the first row is right at top-1
    assert acc.top(5) == pytest.approx(50.0)  # rows 0 and 1 contain label 0 in their top 5; row 3's top 5 lacks 1
    per_class = acc.per_class()
    assert per_class[0] == pytest.approx(100 / 3)
    assert per_class[1] == 0.0
    assert per_class[2] is None  # no image of class 2


def test_label_sets_real_rule_and_empty_sets_left_out():
    acc = Accuracy(6)
    logits = _logits([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [5, 4, 3, 2, 1]])
    acc.update_label_sets(logits, [[3, 0], [2], []])
    assert acc.n == 2  # the empty set is excluded from the mean
    assert acc.top(1) == pytest.approx(50.0)  # row 0: top-1 is 0, which is in {3, 0}; row 1: 1 not in {2}
    assert acc.top(5) == pytest.approx(100.0)


def test_merge_through_tensor_round_trip():
    a = Accuracy(3)
    a.update(_logits([[0, 1, 2], [1, 2, 0]], 3), torch.tensor([0, 2]))
    b = Accuracy(3)
    b.load_tensor(a.as_tensor() * 2)  # what an all-reduce over two identical ranks gives
    assert b.n == 4 and b.correct == {1: 2, 5: 4}
    assert b.class_total == [2, 0, 2]


def test_load_label_sets_list_and_dict(tmp_path):
    files = ["d/b.jpg", "d/a.jpg"]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([[1], [2, 3]]))  # in sorted file-name order: a.jpg, b.jpg
    assert load_label_sets(listed, files) == [[2, 3], [1]]
    mapped = tmp_path / "map.json"
    mapped.write_text(json.dumps({"a.jpg": [], "b.jpg": [4]}))
    assert load_label_sets(mapped, files) == [[4], []]


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ("[[1]]", "has 1 entries but the data set has 2"),
    ('{"a.jpg": [1]}', "no labels for 1 image"),
    ('[[1], ["x"]]', "integer class indices"),
])
def test_label_set_errors(tmp_path, content, message):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(ResnetsError, match=message):
        load_label_sets(path, ["d/b.jpg", "d/a.jpg"])


def test_missing_label_file(tmp_path):
    with pytest.raises(ResnetsError, match="not found"):
        load_label_sets(tmp_path / "nope.json", ["x.jpg"])


def _batches(rows: list[list[int]], targets: list[int], skipped_per_batch: list[list[str]]):
    """Loader-like batches: uint8 'images' that carry their row index, so the predictor can look logits up."""
    start, out = 0, []
    for skipped, size in skipped_per_batch:
        images = torch.arange(start, start + size, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
        out.append((images, torch.tensor(targets[start:start + size]), skipped))
        start += size
    return out


def test_run_accuracy_maps_labels_and_keeps_label_sets_aligned_past_skipped_images():
    logits = _logits([[0, 1], [1, 0], [2, 1], [0, 2]], 3)

    def predict(images: torch.Tensor) -> torch.Tensor:
        return logits[images[:, 0, 0, 0].long()]

    prepare = lambda images: images.float()  # noqa: E731
    # 5 samples in dataset order; sample "s1" is unreadable: batch 1 holds s0 (kept) and s1 (skipped)
    batches = _batches([], [0, 1, 0, 0], [(["s1"], 1), ([], 3)])
    names = ["s0", "s1", "s2", "s3", "s4"]
    sets = [[0], [9], [1], [0, 2], [0]]
    seen = []
    acc = run_accuracy(predict, batches, 3, prepare, label_sets=sets, sample_names=names, on_skipped=seen.extend)
    assert seen == ["s1"] and acc.n == 4
    assert acc.top(1) == pytest.approx(100.0)  # s0:{0} top 0, s2:{1} top 1, s3:{0,2} top 2, s4:{0} top 0
    # dataset label 0 -> model output 1 (classes matched by name)
    mapped = run_accuracy(predict, _batches([], [0, 0, 0, 0], [([], 4)]), 3, prepare,
                          label_map=label_map(["b"], ["a", "b", "c"], 3))
    assert mapped.top(1) == pytest.approx(25.0)  # only row 1 ranks class 1 first


def test_label_map_errors():
    with pytest.raises(ResnetsError, match="not among the model's classes"):
        label_map(["x"], ["a", "b"], 2)
    with pytest.raises(ResnetsError, match="carry no class names"):
        label_map(["a", "b", "c"], None, 2)


def test_logits_loop_yields_empty_batches_for_their_skips():
    empty = (torch.empty(0, 3, 0, 0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), ["bad.jpg"])
    out = list(logits_loop(lambda x: x, [empty], lambda x: x))
    assert len(out) == 1 and out[0][0].numel() == 0 and out[0][1][2] == ["bad.jpg"]
