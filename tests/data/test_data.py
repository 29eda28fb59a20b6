"""Tests for `distill.data.load_task_data`: GLUE directories, the hub, disk and plain files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import pytest

from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.errors import DistillError

GLUE_DIR = Path(__file__).parents[2].parent / "shared/data/glue"

# (task, train rows, dev rows): the truth from ../shared/data/README.md (quote handling off).
GLUE_COUNTS = [
    ("sst2", 67_349, 872),
    ("cola", 8_551, 1_043),
    ("mrpc", 3_668, 408),
    ("stsb", 5_749, 1_500),
    ("wnli", 635, 71),
]


@pytest.fixture
def glue_dir() -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(f"{GLUE_DIR} is not present")
    return GLUE_DIR


# -- the real GLUE directory ----------------------------------------------------------------
@pytest.mark.parametrize(("task", "train_rows", "dev_rows"), GLUE_COUNTS)
def test_glue_dir_row_counts_are_exact(
    glue_dir: Path, task: str, train_rows: int, dev_rows: int
) -> None:
    data = load_task_data(task, DataConfig(path=str(glue_dir)))
    assert (len(data.train), len(data.eval)) == (train_rows, dev_rows)
    assert data.train_total == train_rows
    assert len(data.train.labels) == train_rows and len(data.eval.labels) == dev_rows
    pair_task = task in ("mrpc", "stsb", "wnli")
    assert (data.train.text_pairs is not None) == pair_task
    if pair_task:
        assert len(data.train.text_pairs) == train_rows


@pytest.mark.parametrize(
    ("task", "train_positive", "dev_positive"),
    [("sst2", 37_569, 444), ("cola", 6_023, 721), ("mrpc", 2_474, 279), ("wnli", 312, 31)],
)
def test_glue_dir_label_counts_match_the_official_release(
    glue_dir: Path, task: str, train_positive: int, dev_positive: int
) -> None:
    data = load_task_data(task, DataConfig(path=str(glue_dir)))
    train, dev = Counter(data.train.labels), Counter(data.eval.labels)
    assert set(train) == set(dev) == {0, 1}
    assert (train[1], dev[1]) == (train_positive, dev_positive)


def test_glue_dir_stsb_is_regression_with_float_labels_in_0_5(glue_dir: Path) -> None:
    data = load_task_data("stsb", DataConfig(path=str(glue_dir)))
    assert data.task.is_regression
    for labels in (data.train.labels, data.eval.labels):
        assert all(isinstance(label, float) for label in labels)
        assert min(labels) == 0.0 and max(labels) == 5.0
    # The score is the last of 10 columns: first rows of train.tsv and dev.tsv.
    assert data.train.labels[:2] == [5.0, 3.8]
    assert data.train.texts[0] == "A plane is taking off."
    assert data.train.text_pairs[0] == "An air plane is taking off."
    assert data.eval.labels[:2] == [5.0, 4.75]


def test_glue_dir_cola_reads_the_headerless_columns(glue_dir: Path) -> None:
    data = load_task_data("cola", DataConfig(path=str(glue_dir)))
    assert data.train.texts[0] == (
        "Our friends won't buy this analysis, let alone the next one we propose."
    )
    assert data.train.labels[0] == 1
    assert data.eval.texts[0] == "The sailors rode the breeze clear of the rocks."


def test_glue_dir_mrpc_reads_first_column_despite_bom(glue_dir: Path) -> None:
    assert (glue_dir / "MRPC/train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality\t")
    data = load_task_data("mrpc", DataConfig(path=str(glue_dir)))
    assert data.train.labels[:2] == [1, 0]
    assert data.train.texts[0].startswith('Amrozi accused his brother, whom he called "the')
    assert data.train.text_pairs[0].startswith('Referring to him as only "the witness"')
    # An unbalanced quote opens the dev file's first pair: it must stay one row.
    assert data.eval.text_pairs[0] == (
        '"The foodservice pie business does not fit our long-term growth strategy.'
    )


# -- a GLUE-layout directory built in the test ----------------------------------------------
def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def _fake_sst2(root: Path, train_rows: int = 40) -> Path:
    lines = "".join(f'sentence number {i} "quoted\t{i % 2}\n' for i in range(train_rows))
    _write(root / "SST-2/train.tsv", "sentence\tlabel\n" + lines)
    _write(root / "SST-2/dev.tsv", "sentence\tlabel\nfine\t1\nbad\t0\n")
    return root


def test_glue_dir_bom_header_in_a_small_mrpc(tmp_path: Path) -> None:
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    _write(
        tmp_path / "MRPC/train.tsv",
        header + '1\t1\t2\tA "b\tC d\n0\t3\t4\tE\tF\n',
        encoding="utf-8-sig",
    )
    _write(tmp_path / "MRPC/dev.tsv", header + "0\t5\t6\tG\tH\n", encoding="utf-8-sig")
    data = load_task_data("mrpc", DataConfig(path=str(tmp_path)))
    assert data.train.labels == [1, 0]
    assert data.train.texts == ['A "b', "E"]
    assert data.train.text_pairs == ["C d", "F"]
    assert data.eval.labels == [0]


def test_glue_dir_without_the_task_folder(tmp_path: Path) -> None:
    _fake_sst2(tmp_path)
    with pytest.raises(DistillError, match=r"^data\.path: .*CoLA/train\.tsv not found"):
        load_task_data("cola", DataConfig(path=str(tmp_path)))


def test_glue_dir_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match=r"^data\.path: .*missing is not a directory"):
        load_task_data("sst2", DataConfig(path=str(tmp_path / "missing")))


def test_glue_dir_missing_column_lists_the_columns(tmp_path: Path) -> None:
    _write(tmp_path / "SST-2/train.tsv", "text\tlabel\nhello\t1\n")
    _write(tmp_path / "SST-2/dev.tsv", "text\tlabel\nhello\t1\n")
    with pytest.raises(DistillError) as caught:
        load_task_data("sst2", DataConfig(path=str(tmp_path)))
    assert str(caught.value).endswith("has no column 'sentence' (columns: text, label)")


def test_glue_dir_label_outside_the_label_set(tmp_path: Path) -> None:
    _fake_sst2(tmp_path)
    _write(tmp_path / "SST-2/dev.tsv", "sentence\tlabel\nfine\t1\nodd\t7\n")
    with pytest.raises(DistillError) as caught:
        load_task_data("sst2", DataConfig(path=str(tmp_path)))
    message = str(caught.value)
    assert message.startswith("data: ") and "dev row 2: label '7'" in message
    assert message.endswith("is not in the task's label set (0, 1)")


def test_glue_dir_empty_split(tmp_path: Path) -> None:
    _fake_sst2(tmp_path)
    _write(tmp_path / "SST-2/dev.tsv", "sentence\tlabel\n")
    with pytest.raises(DistillError, match=r"^data: .*SST-2 dev has no examples$"):
        load_task_data("sst2", DataConfig(path=str(tmp_path)))


def test_glue_dir_quotes_do_not_merge_rows(tmp_path: Path) -> None:
    data = load_task_data("sst2", DataConfig(path=str(_fake_sst2(tmp_path, train_rows=40))))
    assert len(data.train) == 40
    assert data.train.texts[3] == 'sentence number 3 "quoted'
    assert data.train.labels[:4] == [0, 1, 0, 1]


# -- subsampling ----------------------------------------------------------------------------
def test_max_train_examples_is_deterministic_per_seed(tmp_path: Path) -> None:
    root = _fake_sst2(tmp_path, train_rows=200)

    def texts(seed: int) -> list[str]:
        data = load_task_data("sst2", DataConfig(path=str(root), max_train_examples=25), seed)
        assert len(data.train) == 25 and data.train_total == 200
        return data.train.texts

    first, again, other = texts(0), texts(0), texts(1)
    assert first == again
    assert first != other
    assert len(set(first)) == 25  # sampled without replacement
    # Texts and labels stay aligned after subsampling (label = row number % 2).
    data = load_task_data("sst2", DataConfig(path=str(root), max_train_examples=25), 0)
    for text, label in zip(data.train.texts, data.train.labels, strict=True):
        assert int(text.split()[2]) % 2 == label


def test_held_out_share_sets_seeded_rows_apart(tmp_path: Path) -> None:
    root = _fake_sst2(tmp_path, train_rows=200)

    def split(seed: int) -> tuple[list[str], list[str]]:
        data = load_task_data("sst2", DataConfig(path=str(root), held_out_share=0.15), seed)
        assert data.held_out is not None
        assert (len(data.train), len(data.held_out), data.train_total) == (170, 30, 200)
        # labels stay with their texts (label = row number % 2)
        for text, label in zip(data.held_out.texts, data.held_out.labels, strict=True):
            assert int(text.split()[2]) % 2 == label
        return data.train.texts, data.held_out.texts

    train, held = split(0)
    assert not set(train) & set(held)
    assert len(set(train) | set(held)) == 200
    assert split(0) == (train, held)
    assert split(1)[1] != held
    assert load_task_data("sst2", DataConfig(path=str(root))).held_out is None


def test_held_out_share_that_leaves_no_row_is_one_line(tmp_path: Path) -> None:
    root = _fake_sst2(tmp_path, train_rows=4)
    with pytest.raises(DistillError, match=r"^data.held_out_share: 0.1 of 4 training rows "):
        load_task_data("sst2", DataConfig(path=str(root), held_out_share=0.1))


def test_max_train_examples_above_the_count_keeps_everything(tmp_path: Path) -> None:
    root = _fake_sst2(tmp_path, train_rows=30)
    data = load_task_data("sst2", DataConfig(path=str(root), max_train_examples=1000))
    assert len(data.train) == data.train_total == 30
    assert data.train.texts[0] == 'sentence number 0 "quoted'


def test_max_eval_examples_takes_the_first_rows(tmp_path: Path) -> None:
    root = _fake_sst2(tmp_path)
    data = load_task_data("sst2", DataConfig(path=str(root), max_eval_examples=1))
    assert data.eval.texts == ["fine"] and data.eval.labels == [1]


# -- the hub and disk -----------------------------------------------------------------------
def _sst2_features() -> datasets.Features:
    return datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "idx": datasets.Value("int32"),
        }
    )


def _sst2_split(sentences: list[str], labels: list[int]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"sentence": sentences, "label": labels, "idx": list(range(len(sentences)))},
        features=_sst2_features(),
    )


def test_hub_dataset_repo_layout(tmp_path: Path) -> None:
    # A local folder laid out as nyu-mll/glue is: README front matter naming the configs.
    repo = tmp_path / "glue"
    (repo / "sst2").mkdir(parents=True)
    _sst2_split(["good", "bad", "fine"], [1, 0, 1]).to_parquet(
        repo / "sst2/train-00000-of-00001.parquet"
    )
    _sst2_split(["great", "awful"], [1, 0]).to_parquet(
        repo / "sst2/validation-00000-of-00001.parquet"
    )
    _write(
        repo / "README.md",
        "---\nconfigs:\n- config_name: sst2\n  data_files:\n"
        "  - split: train\n    path: sst2/train-00000-of-00001.parquet\n"
        "  - split: validation\n    path: sst2/validation-00000-of-00001.parquet\n---\n"
        "# A toy GLUE\n",
    )
    data = load_task_data("sst2", DataConfig(source="hub", name=str(repo)))
    assert data.train.texts == ["good", "bad", "fine"]
    assert data.train.labels == [1, 0, 1]  # ClassLabel indices are taken as class indices
    assert data.eval.texts == ["great", "awful"] and data.eval.labels == [1, 0]
    assert data.train.text_pairs is None
    assert data.source == f"hub:{repo}/sst2"


@pytest.mark.parametrize(
    ("task", "eval_split"), [("sst2", "validation"), ("mnli", "validation_matched")]
)
def test_hub_call_uses_the_task_as_config(
    monkeypatch: pytest.MonkeyPatch, task: str, eval_split: str
) -> None:
    calls = []
    if task == "sst2":
        split = _sst2_split(["a", "b"], [0, 1])
    else:
        split = datasets.Dataset.from_dict(
            {"premise": ["p", "q"], "hypothesis": ["h", "i"], "label": [2, 0]},
            features=datasets.Features(
                {
                    "premise": datasets.Value("string"),
                    "hypothesis": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                }
            ),
        )

    def fake_load_dataset(name: str, config: str | None) -> datasets.DatasetDict:
        calls.append((name, config))
        return datasets.DatasetDict({"train": split, eval_split: split})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task_data(task, DataConfig(name="nyu-mll/glue"))
    assert calls == [("nyu-mll/glue", task)]
    assert data.eval.labels == ([0, 1] if task == "sst2" else [2, 0])


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (
            ConnectionError("no network\ntraceback noise"),
            "; without internet, use local data: data.path (a GLUE directory) or data.source: "
            "disk in a recipe, `distill quickstart --data PATH` or $DISTILL_DATA",
        ),
        (ValueError("no network\nunknown config"), ""),  # not about the network: no hint
    ],
)
def test_hub_failure_is_one_line(
    monkeypatch: pytest.MonkeyPatch, error: Exception, hint: str
) -> None:
    def failing(name: str, config: str | None) -> None:
        raise error

    monkeypatch.setattr(datasets, "load_dataset", failing)
    with pytest.raises(DistillError) as caught:
        load_task_data("sst2", DataConfig(name="nyu-mll/glue"))
    assert str(caught.value) == (
        "data.name: could not load 'nyu-mll/glue' (config sst2): no network" + hint
    )


def test_disk_dataset_dict(tmp_path: Path) -> None:
    datasets.DatasetDict(
        {"train": _sst2_split(["a", "b", "c"], [0, 1, 1]), "validation": _sst2_split(["d"], [0])}
    ).save_to_disk(tmp_path / "ds")
    data = load_task_data("sst2", DataConfig(source="disk", path=str(tmp_path / "ds")))
    assert data.train.texts == ["a", "b", "c"] and data.train.labels == [0, 1, 1]
    assert data.eval.texts == ["d"] and data.eval.labels == [0]
    assert data.source == f"disk:{tmp_path / 'ds'}"


def test_disk_missing_split_lists_the_splits(tmp_path: Path) -> None:
    datasets.DatasetDict(
        {"train": _sst2_split(["a"], [0]), "test": _sst2_split(["d"], [0])}
    ).save_to_disk(tmp_path / "ds")
    with pytest.raises(DistillError) as caught:
        load_task_data("sst2", DataConfig(source="disk", path=str(tmp_path / "ds")))
    assert str(caught.value) == (
        f"data: split 'validation' not found in disk:{tmp_path / 'ds'}; available: train, test "
        "(set data.train_split / data.eval_split)"
    )


def test_disk_path_that_is_not_a_saved_dataset(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match=r"^data\.path: .* is not a dataset saved with save_to"):
        load_task_data("sst2", DataConfig(source="disk", path=str(tmp_path / "nothing")))


def test_disk_single_dataset_without_splits(tmp_path: Path) -> None:
    _sst2_split(["a", "b"], [0, 1]).save_to_disk(tmp_path / "ds")
    with pytest.raises(DistillError, match=r"^data"):
        load_task_data("sst2", DataConfig(source="disk", path=str(tmp_path / "ds")))


# -- plain files ----------------------------------------------------------------------------
REVIEWS = [("a fine film", "2"), ("dull", "1"), ("loved it", "2"), ("meh", "1")]


def _write_reviews(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Write `review` and `stars` columns in the format the file's suffix names."""
    suffix = path.suffix
    if suffix == ".csv":
        _write(path, "review,stars\n" + "".join(f'"{t}",{s}\n' for t, s in rows))
    elif suffix == ".tsv":
        _write(path, "review\tstars\n" + "".join(f"{t}\t{s}\n" for t, s in rows))
    elif suffix == ".jsonl":
        _write(path, "".join(json.dumps({"review": t, "stars": int(s)}) + "\n" for t, s in rows))
    else:
        datasets.Dataset.from_dict(
            {"review": [t for t, _ in rows], "stars": [int(s) for _, s in rows]}
        ).to_parquet(path)
    return path


def _custom(files: dict[str, Path], **options: object) -> DataConfig:
    return DataConfig(
        files={split: str(path) for split, path in files.items()},
        columns={"text": "review", "label": "stars"},
        **options,
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_files_custom_task_with_columns(tmp_path: Path, suffix: str) -> None:
    train = _write_reviews(tmp_path / f"train{suffix}", REVIEWS)
    evaluation = _write_reviews(tmp_path / f"eval{suffix}", [("so so", "1"), ("great", "2")])
    data = load_task_data(
        "mytask", _custom({"train": train, "eval": evaluation}, labels=["1", "2"])
    )
    assert data.task.name == "mytask" and data.task.labels == ("1", "2")
    assert data.task.text_column == "review" and data.task.label_column == "stars"
    assert data.task.metric_name == "accuracy"
    assert data.train.texts == [t for t, _ in REVIEWS]
    assert data.train.labels == [1, 0, 1, 0]  # indices into labels=["1", "2"]
    assert data.eval.texts == ["so so", "great"] and data.eval.labels == [0, 1]
    assert data.source == "files"


def test_tsv_unbalanced_quote_does_not_merge_rows(tmp_path: Path) -> None:
    rows = [('an "unbalanced quote', "2"), ("next row", "1"), ("third", "2")]
    train = _write_reviews(tmp_path / "train.tsv", rows)
    data = load_task_data("mytask", _custom({"train": train, "eval": train}, labels=["1", "2"]))
    assert len(data.train) == 3
    assert data.train.texts == ['an "unbalanced quote', "next row", "third"]
    assert data.train.labels == [1, 0, 1]


def test_files_sentence_pair_custom_task(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "pairs.jsonl",
        "".join(
            json.dumps({"q": q, "a": a, "y": y}) + "\n"
            for q, a, y in [("q1", "a1", "yes"), ("q2", "a2", "no"), ("q3", "a3", "yes")]
        ),
    )
    config = DataConfig(
        files={"train": str(path), "eval": str(path)},
        columns={"text": "q", "text_pair": "a", "label": "y"},
        labels=["no", "yes"],
    )
    data = load_task_data("pairs", config)
    assert data.train.texts == ["q1", "q2", "q3"]
    assert data.train.text_pairs == ["a1", "a2", "a3"]
    assert data.train.labels == [1, 0, 1]
    assert data.task.text_pair_column == "a"


def test_files_custom_regression_gives_float_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "scores.csv", "text,score\nx,1\ny,2.5\nz,4.75\n")
    config = DataConfig(
        files={"train": str(path), "eval": str(path)},
        columns={"text": "text", "label": "score"},
        regression=True,
    )
    data = load_task_data("scores", config)
    assert data.task.is_regression and data.task.num_labels == 1
    assert data.task.metric_name == "pearson_spearman_mean"
    assert data.train.labels == [1.0, 2.5, 4.75]
    assert all(type(label) is float for label in data.train.labels)


def test_files_regression_label_that_is_not_a_number(tmp_path: Path) -> None:
    path = _write(tmp_path / "scores.csv", "text,score\nx,1\ny,high\n")
    config = DataConfig(
        files={"train": str(path), "eval": str(path)},
        columns={"text": "text", "label": "score"},
        regression=True,
    )
    with pytest.raises(DistillError) as caught:
        load_task_data("scores", config)
    assert str(caught.value) == (
        f"data: {path} row 2: label 'high' is not a number (regression task)"
    )


def test_files_label_set_read_from_training_data_sorted(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", "review,stars\na,pos\nb,neg\nc,mixed\nd,pos\n")
    evaluation = _write(tmp_path / "eval.csv", "review,stars\ne,neg\nf,pos\n")
    data = load_task_data("mytask", _custom({"train": train, "eval": evaluation}))
    assert data.task.labels == ("mixed", "neg", "pos")
    assert data.task.num_labels == 3
    assert data.train.labels == [2, 1, 0, 2]
    assert data.eval.labels == [1, 2]


def test_files_label_outside_the_label_set(tmp_path: Path) -> None:
    train = _write_reviews(tmp_path / "reviews.csv", REVIEWS)
    evaluation = _write(tmp_path / "eval.csv", "review,stars\nok,1\nodd,5\n")
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom({"train": train, "eval": evaluation}, labels=["1", "2"]))
    assert str(caught.value) == (
        f"data: {evaluation} row 2: label '5' is not in the task's label set (1, 2)"
    )


@pytest.mark.parametrize("content", ["", "review,stars\n"])
def test_files_empty_data_file(tmp_path: Path, content: str) -> None:
    empty = _write(tmp_path / "train.csv", content)
    evaluation = _write_reviews(tmp_path / "reviews.csv", REVIEWS)
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom({"train": empty, "eval": evaluation}, labels=["1", "2"]))
    message = str(caught.value)
    assert message.startswith("data")
    assert str(empty) in message or "files train has no examples" in message


def test_files_missing_column_lists_available_columns(tmp_path: Path) -> None:
    train = _write_reviews(tmp_path / "reviews.csv", REVIEWS)
    config = DataConfig(
        files={"train": str(train), "eval": str(train)},
        columns={"text": "sentence", "label": "stars"},
        labels=["1", "2"],
    )
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", config)
    assert str(caught.value) == (
        "data.columns: column 'sentence' not found in files train; columns: review, stars"
    )


def test_files_missing_file(tmp_path: Path) -> None:
    train = _write_reviews(tmp_path / "reviews.csv", REVIEWS)
    missing = tmp_path / "nope.csv"
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom({"train": train, "eval": missing}, labels=["1", "2"]))
    assert str(caught.value) == f"data.files.eval: {missing} not found"


def test_files_missing_split(tmp_path: Path) -> None:
    train = _write_reviews(tmp_path / "reviews.csv", REVIEWS)
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom({"train": train}, labels=["1", "2"]))
    assert str(caught.value) == (
        "data: split 'eval' not found in files; available: train "
        "(set data.train_split / data.eval_split)"
    )


def test_files_mixed_formats(tmp_path: Path) -> None:
    train = _write_reviews(tmp_path / "reviews.csv", REVIEWS)
    evaluation = _write_reviews(tmp_path / "reviews.jsonl", REVIEWS)
    with pytest.raises(DistillError, match=r"^data\.files: use one format for all splits"):
        load_task_data("mytask", _custom({"train": train, "eval": evaluation}))


def test_files_max_train_examples(tmp_path: Path) -> None:
    rows = [(f"review {i}", str(1 + i % 2)) for i in range(60)]
    train = _write_reviews(tmp_path / "train.jsonl", rows)

    def picked(seed: int) -> list[str]:
        config = _custom({"train": train, "eval": train}, labels=["1", "2"], max_train_examples=10)
        data = load_task_data("mytask", config, seed=seed)
        assert len(data.train) == 10 and data.train_total == 60 and len(data.eval) == 60
        return data.train.texts

    assert picked(3) == picked(3)
    assert picked(3) != picked(4)


def test_files_empty_text_cell_is_not_the_string_none(tmp_path: Path) -> None:
    # A blank cell is a hole in the data, not a text: refused by file and row (never "None").
    path = _write(tmp_path / "train.csv", "review,stars\nok,1\n,1\nfine,2\n")
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom({"train": path, "eval": path}))
    assert str(caught.value) == (
        f"data: {path} row 2: empty text in column 'review'; fill it in or delete the row"
    )


def test_files_numeric_looking_texts_are_kept_verbatim(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.csv", "review,stars\n007,1\n0.50,2\n")
    data = load_task_data("mytask", _custom({"train": path, "eval": path}))
    assert data.train.texts == ["007", "0.50"]
