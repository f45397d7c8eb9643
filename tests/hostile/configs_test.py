"""Hostile training configs and CLI flags: one line, exit 2, nothing built.

Every case is a plain user mistake; `keras-clip` must say what is wrong and
where in one line (no traceback), before any training starts.
"""

import json

import pytest
import tensorflow as tf

from keras_clip.data import tfrecord_schema
from tests.hostile.corpus import assert_user_error, encode, noise, run_cli


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "s.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(4):
            writer.write(tfrecord_schema.serialize_example(encode(noise(seed=i)), [f"c {i}"]))
    return str(path)


def train(shard, tmp_path, *sets, config=None):
    argv = ["train", "--set", f"train_data={shard}", "--set", "steps=4",
            "--set", "warmup_steps=1", "--set", "batch_size=2",
            "--set", f"output_dir={tmp_path / 'run'}"]
    for item in sets:
        argv += ["--set", item]
    return argv + (["--config", config] if config else [])


BAD_SETS = [  # (id, --set overrides, phrases)
    ("unknown-key", ["learning_rat=0.1"], ["unknown key(s) 'learning_rat'"]),
    ("image-size-typo", ["imagesize=64"], ["unknown key(s)"]),
    ("lr-nan", ["learning_rate=NaN"], ["learning_rate must be a finite number"]),
    ("lr-infinity", ["learning_rate=Infinity"], ["learning_rate must be a finite number"]),
    ("lr-minus-infinity", ["learning_rate=-Infinity"], ["finite"]),
    ("lr-negative", ["learning_rate=-0.1"], ["learning_rate must be positive"]),
    ("lr-zero", ["learning_rate=0"], ["learning_rate must be positive"]),
    ("lr-string", ["learning_rate=fast"], ["learning_rate must be float"]),
    ("lr-list", ["learning_rate=[1]"], ["learning_rate must be float"]),
    ("batch-zero", ["batch_size=0"], ["batch_size must be at least 1"]),
    ("batch-float", ["batch_size=2.5"], ["batch_size must be int"]),
    ("batch-bool", ["batch_size=true"], ["batch_size must be int"]),
    ("steps-negative", ["steps=-3"], ["steps must be at least 1"]),
    ("steps-and-epochs", ["epochs=2"], ["exactly one of steps and epochs"]),
    ("warmup-over-steps", ["warmup_steps=10"], ["warmup_steps (10) must be below steps (4)"]),
    ("warmup-negative", ["warmup_steps=-1"], ["warmup_steps must be at least 0"]),
    ("weight-decay-negative", ["weight_decay=-0.2"], ["weight_decay must not be negative"]),
    ("weight-decay-nan", ["weight_decay=NaN"], ["weight_decay must be a finite number"]),
    ("beta-2-one", ["beta_2=1"], ["beta_2 must be in [0, 1)"]),
    ("beta-1-negative", ["beta_1=-0.5"], ["beta_1 must be in [0, 1)"]),
    ("epsilon-zero", ["epsilon=0"], ["epsilon must be positive"]),
    ("clip-negative", ["gradient_clip_norm=-1"], ["gradient_clip_norm must be positive"]),
    ("precision-typo", ["precision=bf16"], ["precision must be one of"]),
    ("distribution-typo", ["distribution=gpu"], ["distribution must be one of"]),
    ("objective-typo", ["objective=softmax"],
     ["objective must be one of contrastive, sigmoid, got 'softmax'"]),
    ("objective-number", ["objective=1"], ["objective must be str"]),
    ("patch-dropout-whole", ["patch_dropout=1"], ["patch_dropout must be in [0, 1), got 1"]),
    ("patch-dropout-word", ["patch_dropout=half"], ["patch_dropout must be float, got 'half'"]),
    ("wise-ft-alpha-2", ["wise_ft_alpha=2"], ["wise_ft_alpha must be in [0, 1]"]),
    ("verbose-7", ["verbose=7"], ["verbose must be 0, 1 or 2"]),
    ("unlocked-negative", ["image_unlocked_blocks=-1"], ["image_unlocked_blocks must be"]),
    ("architecture-keys", ['architecture={"image": 1}'], ["architecture must have"]),
    ("no-equals", ["steps"], ["Invalid override 'steps': expected key=value"]),
    ("train-data-empty", ["train_data="], ["train_data (a glob of TFRecord shards) is required"]),
    ("train-data-nowhere", ["train_data=/nowhere/*.tfrecord"], ["matches no file"]),
    ("validation-nowhere", ["validation_data=/nowhere/*.tfrecord"],
     ["validation_data='/nowhere/*.tfrecord' matches no file"]),
    ("preset-typo", ["preset=tiny-vitt"], ["Unknown CLIP preset 'tiny-vitt'"]),
    ("preset-missing-file", ["preset=/nowhere/model.keras"], ["No model file"]),
    ("tokenizer-missing-file", ["tokenizer=/nowhere/merges.txt"], ["/nowhere/merges.txt"]),
    ("shuffle-buffer-zero", ["shuffle_buffer=0"], ["shuffle_buffer must be at least 1"]),
    ("recipe-typo", ["recipe=smal"], ["recipe must be one of paper, small"]),
    ("image-size-zero", ["image_size=0"], ["image_size must be in [1, 4096], got 0"]),
    ("image-size-huge", ["image_size=100000"], ["image_size must be in [1, 4096]"]),
    ("image-size-not-patches", ["image_size=36"], ["image_size", "36"]),
    ("context-length-one", ["context_length=1"], ["context_length must be in [2, 4096]"]),
    ("tokenizer-folder-without-files", ["tokenizer=/"], ["has no vocab.json"]),
    # The shard stores no ids: without a tokenizer there is nothing to train on.
    ("no-ids-and-no-tokenizer", ["tokenizer=null"],
     ["records hold no token_ids: pass a tokenizer"]),
]


@pytest.mark.parametrize("name,sets,phrases", BAD_SETS, ids=[c[0] for c in BAD_SETS])
def test_a_bad_setting_is_one_line(name, sets, phrases, shard, tmp_path, capsys):
    assert_user_error(capsys, train(shard, tmp_path, *sets), *phrases)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_records_without_captions_stop_training_at_once(tmp_path, capsys):
    path = tmp_path / "uncaptioned.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(4):
            writer.write(tfrecord_schema.serialize_example(encode(noise(seed=i)), []))
    assert_user_error(capsys, train(str(path), tmp_path), str(path), "has no caption")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_train_data_glob_matching_only_a_folder_is_refused(shard, tmp_path, capsys):
    (tmp_path / "d.tfrecord").mkdir()
    assert_user_error(capsys, train(shard, tmp_path, f"train_data={tmp_path}/*.tfrecord"),
                      "matches no file (only", "d.tfrecord")


def test_a_random_bytes_model_is_called_damaged_not_missing(shard, tmp_path, capsys):
    fake = tmp_path / "model.keras"
    fake.write_bytes(b"\x00\x01 definitely not a zip" * 40)
    assert_user_error(capsys, train(shard, tmp_path, f"preset={fake}"), "is not a .keras model")


CONFIG_FILES = [  # (id, file content, phrases)
    ("invalid-json", '{"steps": 4,}', ["is not valid JSON", "line 1"]),
    ("a-list", "[1, 2]", ["must hold a JSON object"]),
    ("empty", "", ["is not valid JSON"]),
    ("not-utf8", b"\xff\xfe{}", ["is not valid JSON"]),
    ("wrong-type-inside", '{"seed": "big"}', ["seed must be int"]),
]


@pytest.mark.parametrize("name,text,phrases", CONFIG_FILES, ids=[c[0] for c in CONFIG_FILES])
def test_a_bad_config_file_is_named_in_one_line(name, text, phrases, shard, tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = assert_user_error(capsys, train(shard, tmp_path, config=config), *phrases)
    if name != "wrong-type-inside":
        assert str(config) in line


def test_a_missing_config_file_is_one_line(shard, tmp_path, capsys):
    assert_user_error(capsys, train(shard, tmp_path, config=tmp_path / "none.json"),
                      "none.json")


def test_debug_shows_the_traceback(shard, tmp_path):
    from keras_clip import cli

    with pytest.raises(ValueError, match="learning_rate must be positive"):
        cli.main(train(shard, tmp_path, "learning_rate=-1") + ["--debug"])


FLAGS = [  # (id, argv, phrases): argparse or the command refuses them
    ("workers-zero", ["make-tfrecords", "--table", "t.csv", "--output", "o", "--workers", "0"],
     ["--workers: must be at least 1"]),
    ("workers-word", ["make-tfrecords", "--table", "t.csv", "--output", "o", "--workers", "x"],
     ["--workers: expected a number"]),
    ("shard-size-zero", ["make-tfrecords", "--table", "t.csv", "--output", "o",
                         "--shard-size-mb", "0"], ["must be a positive number"]),
    ("shard-size-nan", ["make-tfrecords", "--table", "t.csv", "--output", "o",
                        "--shard-size-mb", "nan"], ["must be at least"]),
    ("max-shorter-side-negative", ["make-tfrecords", "--table", "t.csv", "--output", "o",
                                   "--max-shorter-side", "-5"], ["must be at least 0"]),
    ("context-length-one", ["make-tfrecords", "--table", "t.csv", "--output", "o",
                            "--context-length", "1"], ["must be at least 2"]),
    ("no-source", ["make-tfrecords", "--output", "o"], ["one of the arguments"]),
    ("two-sources", ["make-tfrecords", "--table", "t", "--webdataset", "w", "--output", "o"],
     ["not allowed with"]),
    ("no-output", ["make-tfrecords", "--table", "t.csv"], ["--output"]),
    ("evaluate-batch-zero", ["evaluate", "--model", "m", "--folder", "f", "--batch-size", "0"],
     ["must be at least 1"]),
    ("export-version-negative", ["export", "--model", "m", "--output", "o", "--version", "-1"],
     ["must be at least 0"]),
    ("convert-from-typo", ["convert", "x.pt", "--from", "openclip", "--out", "o"],
     ["invalid choice"]),
    ("convert-image-size-zero", ["convert", "x.pt", "--from", "openai", "--out", "o",
                                 "--image-size", "0"], ["must be at least 1"]),
    ("demo-steps-zero", ["demo", "--steps", "0"], ["must be at least 1"]),
    ("vocabulary-size-without-merges", ["train-tokenizer", "--table", "t.csv", "--output",
                                        "o", "--vocabulary-size", "514"],
     ["must be at least 515"]),
    ("unknown-command", ["trian"], ["invalid choice"]),
]


@pytest.mark.parametrize("name,argv,phrases", FLAGS, ids=[c[0] for c in FLAGS])
def test_a_bad_flag_is_refused_by_the_parser(name, argv, phrases, capsys):
    code, out, err = run_cli(capsys, argv)
    assert code == 2 and "usage:" in err
    last = err.strip().splitlines()[-1]
    for phrase in phrases:
        assert phrase in last, (phrase, last)


COMMAND_ERRORS = [  # (id, argv maker(tmp), phrases)
    ("table-missing", lambda t: ["make-tfrecords", "--table", t / "no.csv", "--output", t / "o"],
     ["No caption table at"]),
    ("table-is-a-folder", lambda t: ["make-tfrecords", "--table", t, "--output", t / "o"],
     ["No caption table at"]),
    ("output-under-a-file", lambda t: _output_under_file(t), ["it is a file"]),
    ("evaluate-model-missing", lambda t: ["evaluate", "--model", t / "none.keras",
                                          "--folder", t], ["No model file"]),
    ("evaluate-model-random-bytes", lambda t: ["evaluate", "--model", _junk(t), "--folder", t],
     ["is not a .keras model"]),
    ("evaluate-model-folder-without-model", lambda t: ["evaluate", "--model", t,
                                                       "--folder", t],
     ["without model.keras"]),
    ("export-model-missing", lambda t: ["export", "--model", t / "none.keras",
                                        "--output", t / "o"], ["No model file"]),
    ("tokenizer-nowhere", lambda t: ["make-tfrecords", "--table", _table(t), "--output",
                                     t / "o", "--tokenizer", t / "none"],
     ["no tokenizer at", "expected 'openai'"]),
    ("train-tokenizer-no-captions", lambda t: ["train-tokenizer", "--table", _empty_table(t),
                                               "--output", t / "tok"],
     ["found no captions"]),
    ("train-tokenizer-too-few", lambda t: ["train-tokenizer", "--table", _table(t),
                                           "--output", t / "tok"], ["nothing to learn"]),
    ("tokenizer-vocab-not-json", lambda t: ["make-tfrecords", "--table", _table(t),
                                            "--output", t / "o", "--tokenizer",
                                            _tokenizer_folder(t, "{not json")],
     ["vocab.json", "is damaged"]),
    ("tokenizer-vocab-a-list", lambda t: ["make-tfrecords", "--table", _table(t),
                                          "--output", t / "o", "--tokenizer",
                                          _tokenizer_folder(t, "[1, 2]")],
     ["is not a JSON object of token"]),
    ("tokenizer-merges-without-vocab", lambda t: ["make-tfrecords", "--table", _table(t),
                                                  "--output", t / "o", "--tokenizer",
                                                  _lone_merges(t)],
     ["Hugging Face merges file", "needs the vocab.json"]),
    ("train-tokenizer-over-a-model", lambda t: ["train-tokenizer", "--table", _table(t),
                                                "--output", _model_folder(t)],
     ["already holds model.keras", "not overwriting"]),
    ("convert-file-missing", lambda t: ["convert", t / "none.pt", "--from", "openai",
                                        "--preset", "tiny-vit", "--out", t / "o"],
     ["No checkpoint file"]),
]


def _output_under_file(tmp):
    (tmp / "a.jpg").write_bytes(encode(noise()))
    (tmp / "t.csv").write_text("filepath,caption\na.jpg,x\n")
    (tmp / "file").write_text("")
    return ["make-tfrecords", "--table", tmp / "t.csv", "--output", tmp / "file" / "p"]


def _table(tmp):
    (tmp / "a.jpg").write_bytes(encode(noise()))
    (tmp / "t.csv").write_text("filepath,caption\na.jpg,x\n")
    return tmp / "t.csv"


def _tokenizer_folder(tmp, vocabulary_text):
    (tmp / "tok").mkdir()
    (tmp / "tok" / "vocab.json").write_text(vocabulary_text)
    (tmp / "tok" / "merges.txt").write_text("#version: 0.2\na b\n")
    return tmp / "tok"


def _lone_merges(tmp):
    (tmp / "m").mkdir()
    (tmp / "m" / "merges.txt").write_text("#version: 0.2\na b\n")
    return tmp / "m" / "merges.txt"


def _model_folder(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "model.keras").write_bytes(b"")
    return tmp / "run"


def _empty_table(tmp):
    (tmp / "t.csv").write_text("filepath,caption\n")
    return tmp / "t.csv"


def _junk(tmp):
    (tmp / "junk.keras").write_bytes(b"random bytes" * 100)
    return tmp / "junk.keras"


@pytest.mark.parametrize("name,make,phrases", COMMAND_ERRORS,
                         ids=[c[0] for c in COMMAND_ERRORS])
def test_a_command_given_the_wrong_file_says_so_in_one_line(name, make, phrases, tmp_path,
                                                            capsys):
    assert_user_error(capsys, make(tmp_path), *phrases)


def test_make_tfrecords_missing_column_prints_no_traceback(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("image,text\na.jpg,x\n")
    assert_user_error(capsys, ["make-tfrecords", "--table", tmp_path / "t.csv", "--output",
                               tmp_path / "o"], "lacks a 'filepath' and a 'caption'")
    assert json.loads(json.dumps({"ok": 1}))


def test_a_keras_model_that_is_no_clip_model_is_named(shard, tmp_path, capsys):
    import keras

    other = tmp_path / "other.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(str(other))
    assert_user_error(capsys, train(shard, tmp_path, f"preset={other}"),
                      "holds a Sequential, not a keras_clip CLIPModel")
