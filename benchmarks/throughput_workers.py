"""The measurements of `training_throughput.py`, one per child process.

Each worker takes a job dict and returns a dict of numbers; the shared
configurations and inputs live here too, so both sides get the same work.
"""


import resource
import statistics
import time

import numpy as np

CONTEXT = 77
TEXT = {"context_length": CONTEXT, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}
CONFIGS = {
    "vit": {"embed_dim": 256, "text_cfg": TEXT,
            "vision_cfg": {"image_size": 224, "layers": 4, "width": 256, "patch_size": 32,
                           "head_width": 64}},
    "resnet": {"embed_dim": 256, "text_cfg": TEXT,
               "vision_cfg": {"image_size": 224, "layers": [1, 1, 1, 1], "width": 32,
                              "head_width": 64}},
}


def batch_arrays(config, batch_size, seed=0):
    """Random pixels, and captions of 8–30 tokens padded to 77 (like COCO's)."""
    rng = np.random.default_rng(seed)
    size = config["vision_cfg"]["image_size"]
    images = rng.normal(size=(batch_size, size, size, 3)).astype("float32")
    token_ids = np.zeros((batch_size, CONTEXT), "int32")
    for row, length in enumerate(rng.integers(8, 31, batch_size)):
        token_ids[row, 0] = 49406
        token_ids[row, 1:length] = rng.integers(1, 49406, length - 1)
        token_ids[row, length] = 49407
    return images, token_ids


def timed(step, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory():
    """Peak RSS of this process, and the accelerator's peak allocation if one was used."""
    import sys

    memory = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if "jax" in sys.modules:
        import jax

        stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
        if stats:
            memory["peak_device_mib"] = stats["peak_bytes_in_use"] / 2**20
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available() and torch.cuda.max_memory_allocated():
            memory["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return memory


def torch_device():
    """"cuda" when torch sees a GPU (as Keras' torch backend then uses it), else "cpu".

    On a GPU, float32 matmuls may use TF32 and cuDNN picks its fastest
    algorithms, as OpenCLIP's training script sets; XLA (JAX) does the same
    by default, so "float32" rows compare like with like.
    """
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    return "cuda"


def synchronized(step, device):
    """`step`, returning only once the device has finished the work it queued."""
    if device == "cpu":
        return step
    import torch

    def run():
        step()
        torch.cuda.synchronize()

    return run


def keras_model(config, precision):
    import keras

    from keras_clip import CLIPModel
    from keras_clip.convert.architectures import open_clip_architecture
    from keras_clip.models.clip_presets import build_towers_from

    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    architecture, _ = open_clip_architecture(config)
    return CLIPModel(*build_towers_from(architecture))


def keras_train(job):
    import keras

    if keras.backend.backend() == "torch":
        torch_device()
    from keras_clip.training.trainer import rematerialize

    model = keras_model(CONFIGS[job["config"]], job["precision"])
    if job.get("remat", False):  # as `keras-clip train` does
        rematerialize(model)
    model.compile(optimizer=keras.optimizers.AdamW(1e-5), jit_compile=job["jit"])
    images, token_ids = batch_arrays(CONFIGS[job["config"]], job["batch"])
    if job["trim"]:
        # As make_dataset's batches come (dataset.trim_to_longest), in numpy so
        # that TensorFlow stays out of this process's memory on JAX and torch.
        longest = (np.nonzero(token_ids)[1].max() + 1 + 15) // 16 * 16
        token_ids = token_ids[:, :longest]
    batch = {"images": keras.ops.convert_to_tensor(images),
             "token_ids": keras.ops.convert_to_tensor(token_ids)}
    # train_on_batch returns the logs as numbers, so each step has finished.
    seconds = timed(lambda: model.train_on_batch(batch), job["steps"], job["warmup"])
    return {"samples_per_s": job["batch"] / seconds, **peak_memory()}


def open_clip_train(job):
    import importlib

    import torch

    from tests.convert import references

    device = torch_device()
    model = references.open_clip_model(CONFIGS[job["config"]]).train().to(device)
    loss_module = importlib.import_module(f"{references.REFERENCE_PACKAGE}.loss").ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    forward = torch.compile(model) if job.get("compile") else model
    images, token_ids = open_clip_inputs(job, device)
    bf16 = job["precision"] == "bfloat16"

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            image, text, scale = forward(images, token_ids)[:3]
            loss = loss_module(image, text, scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = timed(synchronized(step, device), job["steps"], job["warmup"])
    return {"samples_per_s": job["batch"] / seconds, **peak_memory()}


def open_clip_inputs(job, device):
    import torch

    images, token_ids = batch_arrays(CONFIGS[job["config"]], job["batch"])
    return (torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device),
            torch.from_numpy(token_ids.astype(np.int64)).to(device))


def matmul_ceiling(job):
    """GFLOP/s of an n² matmul in `job["framework"]`, fp32 and bf16.

    n is 1024 on a CPU and 8192 on an accelerator (where 1024² finishes in
    microseconds, launch overhead included).
    """
    results = {}
    for precision in ("float32", "bfloat16"):
        if job["framework"] in ("torch", "open_clip"):
            import torch

            device = torch_device()
            n = 1024 if device == "cpu" else 8192
            x = torch.from_numpy(np.random.default_rng(0).normal(size=(n, n)).astype(
                "float32")).to(device, getattr(torch, precision))
            step = synchronized(lambda: torch.matmul(x, x), device)
        elif job["framework"] == "jax":
            import jax

            n = 1024 if jax.default_backend() == "cpu" else 8192
            x = jax.numpy.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype=precision)
            f = jax.jit(lambda x: x @ x)
            step = lambda: f(x).block_until_ready()  # noqa: E731
        else:
            import tensorflow as tf

            n = 1024
            x = tf.cast(tf.random.normal((n, n), seed=0), precision)
            f = tf.function(lambda x: x @ x, jit_compile=True)
            step = lambda: f(x).numpy()  # noqa: E731
        results[precision] = 2 * n**3 / timed(step, 3, 1) / 1e9
    return results


def forward_flops(job):
    """XLA's count of a forward pass per sample (JAX backend, batch 8)."""
    import jax

    model = keras_model(CONFIGS[job["config"]], "float32")
    images, token_ids = batch_arrays(CONFIGS[job["config"]], 8)

    def forward(trainable, non_trainable, images, token_ids):
        return model.stateless_call(
            trainable, non_trainable, {"images": images, "token_ids": token_ids})[0]

    variables = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables])
    analysis = jax.jit(forward).lower(*variables, images, token_ids).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return {"forward_flops_per_sample": analysis["flops"] / 8}


def keras_infer(job):
    import keras

    model = keras_model(CONFIGS[job["config"]], "float32")
    images, token_ids = batch_arrays(CONFIGS[job["config"]], job["batch"])
    images, token_ids = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(token_ids)
    image_fn, text_fn = _compiled(model.encode_image), _compiled(model.encode_text)
    return {
        "images_per_s": job["batch"] / timed(lambda: keras.ops.convert_to_numpy(
            image_fn(images)), job["steps"], job["warmup"]),
        "texts_per_s": job["batch"] / timed(lambda: keras.ops.convert_to_numpy(
            text_fn(token_ids)), job["steps"], job["warmup"]),
    }


def _compiled(function):
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(function)  # stateful Keras call traced once; inference only
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    import torch

    def no_grad(x):
        with torch.no_grad():
            return function(x)

    return no_grad


def exported_embed_pixels(config, batch, jit_compile=False):
    """`embed_pixels` of a freshly exported SavedModel, and a call on `batch` pixels."""
    import tempfile

    import tensorflow as tf

    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from keras_clip.export import export_saved_model

    tokenizer = CLIPTokenizer.train(["a photo of a cat"] * 8, vocabulary_size=600,
                                    context_length=CONTEXT)
    path = export_saved_model(keras_model(CONFIGS[config], "float32"), tokenizer,
                              tempfile.mkdtemp(), jit_compile=jit_compile)
    embed_pixels = tf.saved_model.load(path).signatures["embed_pixels"]
    pixels = tf.constant(batch_arrays(CONFIGS[config], batch)[0])
    name = next(iter(embed_pixels.structured_input_signature[1]))
    return lambda: embed_pixels(**{name: pixels})


def saved_model_infer(job):
    call = exported_embed_pixels(job["config"], job["batch"], job.get("xla", False))
    seconds = timed(call, job["steps"], job["warmup"])
    return {"images_per_s": job["batch"] / seconds}


def open_clip_infer(job):
    import torch

    from tests.convert import references

    device = torch_device()
    model = references.open_clip_model(CONFIGS[job["config"]]).to(device)
    images, token_ids = open_clip_inputs(job, device)

    def run(function, x):
        with torch.no_grad():
            function(x)

    def speed(function, x):
        return job["batch"] / timed(synchronized(lambda: run(function, x), device),
                                    job["steps"], job["warmup"])

    return {"images_per_s": speed(model.encode_image, images),
            "texts_per_s": speed(model.encode_text, token_ids)}


WORKERS = {f.__name__: f for f in (keras_train, open_clip_train, matmul_ceiling, forward_flops,
                                    keras_infer, saved_model_infer, open_clip_infer)}
