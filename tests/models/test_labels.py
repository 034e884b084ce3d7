"""jfv.models.labels: labels files read by hand-made cases, class names resolved by name, synonym and index,
and ambiguous or unknown names refused with the candidates and where every name is listed."""

from __future__ import annotations

import pytest

from jfv.models import labels


def test_read_labels_orders_by_index_and_keeps_synonyms(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("1 dog, hound\n0 cat\n\n2 tiger_shark\n")
    assert labels.read_labels(path) == ("cat", "dog, hound", "tiger_shark")


@pytest.mark.parametrize("text, fragment", [
    ("0 cat\nx dog\n", ":2: expected 'INDEX NAME', got 'x dog'"),
    ("0 cat\n1\n", ":2: expected 'INDEX NAME'"),
    ("0 cat\n2 dog\n", "indices are not 0..1"),
])
def test_malformed_labels_files_name_the_line(tmp_path, text, fragment):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(labels.LabelsError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        labels.read_labels(path)
    with pytest.raises(labels.LabelsError, match="cannot read labels file"):
        labels.read_labels(tmp_path / "missing.txt")


def test_class_index_by_name_synonym_case_underscores_and_index():
    names = ("cat", "dog, hound", "tiger_shark", "great white shark, white shark")
    assert labels.class_index("Cat", names) == 0
    assert labels.class_index("hound", names) == 1 and labels.class_index("dog, hound", names) == 1
    assert labels.class_index("tiger shark", names) == 2  # underscores read as spaces
    assert labels.class_index("  WHITE   shark ", names) == 3  # spaces collapsed
    assert labels.class_index("3", names) == 3
    assert labels.where_listed(names) == "0 cat, 1 dog, hound, 2 tiger_shark, 3 great white shark, white shark"


def test_ambiguous_class_name_lists_the_candidates(shared):
    names = labels.imagenet()
    with pytest.raises(labels.AmbiguousClassError) as e:
        labels.class_index("crane", names)
    message = str(e.value)
    assert "134 'crane' (between 'bittern' and 'limpkin'); 517 'crane' (between 'cradle' and 'crash helmet')" in message
    assert "Pick one by its index in place of the name, e.g. 134" in message
    assert labels.class_index("517", names) == 517 and labels.class_index(" 134", names) == 134
    with pytest.raises(labels.UnknownClassError, match="class index 1000 is out of range: the classes are 0..999"):
        labels.class_index("1000", names)


def test_unknown_class_name_lists_close_matches_and_where_all_are(shared):
    with pytest.raises(labels.UnknownClassError) as e:
        labels.class_index("kat", labels.CIFAR10_CLASSES)
    assert "Close matches: 'cat'. All names with their indices: 0 airplane, 1 automobile, 2 bird, 3 cat" in str(e.value)
    with pytest.raises(labels.UnknownClassError) as e:
        labels.class_index("meerkats", labels.imagenet())
    assert "'meerkat'" in str(e.value) and str(shared / labels.IMAGENET_LABELS) in str(e.value)
    # a plain word lists the classes named with it before spelling neighbours ('crate', 'vat')
    with pytest.raises(labels.UnknownClassError) as e:
        labels.class_index("cat", labels.imagenet())
    assert "Close matches: 'tabby cat', 'tiger cat', 'Persian cat', 'Siamese cat', 'Egyptian cat'." in str(e.value)
