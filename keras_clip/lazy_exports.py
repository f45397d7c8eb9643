"""Packages whose public names load on first use (PEP 562).

`import keras_clip` and the `keras-clip` command's `--help` then load
neither Keras nor TensorFlow; a name's module is imported when the name is
first read, and registers its Keras classes then.
"""

import importlib


def lazy_exports(package, public):
    """`(__getattr__, __dir__)` for `package`, given `{name: defining module}`."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(public[name]), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__():
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
