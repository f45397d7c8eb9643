import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_clip import CLIPModel, cli
from keras_clip.data import tfrecord_schema
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.data.dataset import make_dataset
from tests.data.fixtures import encode, photo, write_folder_source


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer.from_openai(context_length=16)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """make-tfrecords over the damaged folder source: 9 good pairs, 2 shards+."""
    root = tmp_path_factory.mktemp("source")
    table, expected = write_folder_source(root)
    output = root / "out" / "pairs"
    assert cli.main(["make-tfrecords", "--table", str(table), "--output", str(output),
                     "--shard-size-mb", "0.01", "--workers", "2"]) == 0
    return str(output) + "-*.tfrecord", expected["written"]


def test_eval_batches_have_static_shapes_and_count_everything(shards, tokenizer):
    pattern, count = shards
    dataset = make_dataset(pattern, image_size=32, batch_size=4, training=False,
                           tokenizer=tokenizer, drop_remainder=False)
    batches = list(dataset)
    assert sum(int(b["images"].shape[0]) for b in batches) == count
    assert batches[0]["images"].shape == (4, 32, 32, 3)
    assert batches[0]["token_ids"].dtype == tf.int32
    assert batches[0]["token_ids"].shape == (4, 16)
    assert dataset.stats.as_dict() == {
        "records_read": count, "examples_delivered": count,
        "examples_skipped": 0, "records_unreadable": 0,
    }


@pytest.mark.parametrize("training", [False, True])
def test_uint8_batches_are_the_float_batches_before_normalising(shards, tokenizer, training):
    """image_dtype="uint8": the same images as pixels, before normalising."""
    from keras_clip.data.image_ops import normalize
    from keras_clip.preprocessing import CLIP_MEAN, CLIP_STD

    pattern, _ = shards
    options = dict(image_size=32, batch_size=4, training=training, tokenizer=tokenizer,
                   seed=3, deterministic=True)
    floats = next(iter(make_dataset(pattern, **options)))
    pixels = next(iter(make_dataset(pattern, image_dtype="uint8", **options)))
    assert pixels["images"].dtype == tf.uint8
    np.testing.assert_array_equal(pixels["token_ids"], floats["token_ids"])
    # The float batch's pixels, recovered: evaluation's resize is 8-bit
    # already (equal); training's is rounded to 8 bits and saturated, as
    # PIL's would be (within half a level of the clipped value).
    levels = floats["images"].numpy() * np.array(CLIP_STD) * 255 + np.array(CLIP_MEAN) * 255
    difference = np.abs(pixels["images"].numpy() - np.clip(levels, 0, 255))
    assert difference.max() <= (0.5 if training else 0.0) + 1e-3
    if not training:  # normalising the pixels gives the float batch
        np.testing.assert_allclose(normalize(pixels["images"]).numpy(), floats["images"],
                                   atol=1e-6)
    assert float(np.std(levels)) > 10  # real pictures


def test_damaged_records_and_files_are_skipped_and_counted(shards, tokenizer, tmp_path):
    pattern, count = shards
    files = sorted(tf.io.gfile.glob(pattern))
    data = open(files[0], "rb").read()
    records_in_first = sum(1 for _ in tf.data.TFRecordDataset(files[0]))
    # A copy of the first shard cut in the middle of its last record.
    first_record_size = len(next(iter(tf.data.TFRecordDataset(files[0]))).numpy())
    truncated = tmp_path / "cut.tfrecord"
    truncated.write_bytes(data[: len(data) - first_record_size // 2])
    (tmp_path / "cut.tfrecord.json").write_text(f'{{"records": {records_in_first}}}')
    # A shard whose records look right but whose images are not images.
    with tf.io.TFRecordWriter(str(tmp_path / "junk.tfrecord")) as writer:
        for junk in (b"\x00" * 10, b"\xff\xd8 not really a jpeg", encode(photo(1))[:200]):
            writer.write(tfrecord_schema.serialize_example(junk, ["junk"]))
        writer.write(tfrecord_schema.serialize_example(encode(photo(2)), ["fine"]))
    (tmp_path / "junk.tfrecord.json").write_text('{"records": 4}')

    dataset = make_dataset([pattern, str(tmp_path / "*.tfrecord")], image_size=32,
                           batch_size=1, training=False, tokenizer=tokenizer)
    delivered = sum(1 for _ in dataset)
    good = count + (records_in_first - 1) + 1
    assert delivered == good
    assert dataset.stats.as_dict() == {
        "records_read": count + records_in_first - 1 + 4,
        "examples_delivered": good,
        "examples_skipped": 3,
        "records_unreadable": 1,
    }


def test_training_pipeline_augments_and_shuffles(shards, tokenizer):
    pattern, count = shards
    dataset = make_dataset(pattern, image_size=32, batch_size=3, training=True,
                           tokenizer=tokenizer, seed=0, image_dtype="bfloat16")
    batch = next(iter(dataset))
    assert batch["images"].dtype == tf.bfloat16
    assert batch["images"].shape == (3, 32, 32, 3)
    assert len(list(dataset)) == count // 3


def test_missing_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="No TFRecord files match"):
        make_dataset(str(tmp_path / "*.tfrecord"), image_size=32, batch_size=2,
                     training=True)


def test_stored_token_ids_need_no_tokenizer(tmp_path, tokenizer):
    captions = ["a red square", "a blue circle"]
    ids = keras.ops.convert_to_numpy(tokenizer(captions))
    with tf.io.TFRecordWriter(str(tmp_path / "t.tfrecord")) as writer:
        writer.write(tfrecord_schema.serialize_example(
            encode(photo(3)), captions, token_ids=ids))
    dataset = make_dataset(str(tmp_path / "t.tfrecord"), image_size=32, batch_size=1,
                           training=False)
    np.testing.assert_array_equal(next(iter(dataset))["token_ids"].numpy()[0], ids[0])


def test_stored_ids_refit_to_the_context_with_the_records_pad_id():
    # SigLIP's rows pad with </s> (1), which also closes them.
    from keras_clip.data.dataset import _stored_token_ids

    rows = tf.constant([[5, 6, 7, 1, 1, 1], [5, 6, 7, 8, 9, 1]])
    fitted = [_stored_token_ids(tf.reshape(rows, [-1]), 2, index, width, pad_id=1).numpy()
              for index, width in ((0, 8), (0, 4), (1, 4), (0, 3))]
    np.testing.assert_array_equal(fitted[0], [5, 6, 7, 1, 1, 1, 1, 1])  # padded with 1
    np.testing.assert_array_equal(fitted[1], [5, 6, 7, 1])  # only padding was cut
    np.testing.assert_array_equal(fitted[2], [5, 6, 7, 1])  # cut, </s> kept last
    np.testing.assert_array_equal(fitted[3], [5, 6, 1])  # </s> even where text fills
    clip = _stored_token_ids(tf.constant([49406, 5, 49407, 0]), 1, 0, 6).numpy()
    np.testing.assert_array_equal(clip, [49406, 5, 49407, 0, 0, 0])  # CLIP's pad, 0


@pytest.mark.slow
def test_make_tfrecords_to_fit_end_to_end(shards, tokenizer):
    pattern, _ = shards
    dataset = make_dataset(pattern, image_size=32, batch_size=4, training=True,
                           tokenizer=tokenizer, seed=1).repeat()
    model = CLIPModel.from_preset("tiny-vit")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = model.fit(dataset, steps_per_epoch=3, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert len(history.history["loss"]) == 2


def test_deterministic_stream_resumes_exactly_after_skipping(shards, tokenizer):
    pattern, count = shards
    assert count == 9  # three batches of 3 per pass

    def stream(skip_examples):
        return make_dataset(pattern, image_size=32, batch_size=3, training=True,
                            tokenizer=tokenizer, seed=3, repeat=True, deterministic=True,
                            skip_examples=skip_examples)

    whole = [batch for _, batch in zip(range(6), stream(0))]
    resumed = [batch for _, batch in zip(range(3), stream(9))]
    for expected, actual in zip(whole[3:], resumed):
        np.testing.assert_array_equal(actual["images"], expected["images"])
        np.testing.assert_array_equal(actual["token_ids"], expected["token_ids"])
    # Each pass reshuffles and re-augments: pass two is not pass one again.
    first, second = (np.concatenate([b["images"] for b in whole[i:i + 3]]) for i in (0, 3))
    assert not np.allclose(first, second)


def test_batches_are_trimmed_after_their_longest_caption():
    from keras_clip.data.dataset import trim_to_longest

    ids = np.zeros((2, 77), "int32")
    ids[0, :5] = [49406, 320, 0, 256, 49407]  # id 0 is "!" inside a caption
    ids[1, :3] = [49406, 5, 49407]
    assert trim_to_longest(tf.constant(ids)).shape == (2, 16)
    ids[1, :20] = np.r_[49406, np.arange(1, 19), 49407]
    trimmed = trim_to_longest(tf.constant(ids)).numpy()
    np.testing.assert_array_equal(trimmed, ids[:, :32])
    ids[1, :] = 7  # a caption using the whole context is never cut
    assert trim_to_longest(tf.constant(ids)).shape == (2, 77)


def test_trimmed_ids_give_the_same_text_embeddings():
    from keras_clip.data.dataset import trim_to_longest
    from keras_clip.models.text_transformer import TextTransformer

    encoder = TextTransformer(vocabulary_size=49408, context_length=77, hidden_dim=32,
                              num_layers=2, num_heads=2, output_dim=16)
    ids = np.zeros((3, 77), "int32")
    for row, length in enumerate((4, 11, 18)):
        ids[row, :length] = np.r_[49406, np.arange(10, 8 + length), 49407]
    trimmed = trim_to_longest(tf.constant(ids)).numpy()
    assert trimmed.shape == (3, 32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(trimmed)),
                               keras.ops.convert_to_numpy(encoder(ids)), rtol=1e-5, atol=1e-5)
