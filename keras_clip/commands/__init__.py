"""The `keras-clip` sub-commands: name → (add its parser, run it).

Each module imports Keras, TensorFlow and the package's heavy parts inside
its run functions only, so building every parser (and printing help) is
quick.
"""

from keras_clip.commands import data_commands, model_commands

COMMANDS = {
    "demo": (data_commands.demo_parser, data_commands.demo),
    "make-tfrecords": (data_commands.make_tfrecords_parser, data_commands.make_tfrecords),
    "train-tokenizer": (data_commands.train_tokenizer_parser, data_commands.train_tokenizer),
    "train": (model_commands.train_parser, model_commands.train),
    "evaluate": (model_commands.evaluate_parser, model_commands.evaluate),
    "export": (model_commands.export_parser, model_commands.export),
    "convert": (model_commands.convert_parser, model_commands.convert),
}
