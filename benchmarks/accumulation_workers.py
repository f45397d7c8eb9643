"""The accumulation rows of `large_batches.py`: keras_clip and OpenCLIP, one step each.

Both train the benchmark ViT (`throughput_workers.CONFIGS["vit"]`, random
weights) one optimizer step at a time over a batch of `batch` examples in
`accumulation` micro-batches, fp32, AdamW:

- keras_clip: `CLIPModel.accumulation_steps` (cached gradients), through
  `train_on_batch`;
- OpenCLIP: its own training loop, `open_clip_train.train.train_one_epoch`
  with `accum_freq` (features cached without gradients, then each
  micro-batch re-run with the whole batch's loss), unmodified. Its package
  `__init__` cannot import here (torchvision), so `open_clip` is the
  reference package of tests/convert/references.py, plus the few names the
  training module imports and this run never calls.
"""

import argparse
import sys
import time
import types

import numpy as np
from throughput_workers import CONFIGS, batch_arrays, peak_memory


def keras_accumulate(job):
    import keras
    from throughput_workers import keras_model

    model = keras_model(CONFIGS[job["config"]], "float32")
    model.accumulation_steps = job["accumulation"]
    model.compile(optimizer=keras.optimizers.AdamW(1e-5))
    images, token_ids = batch_arrays(CONFIGS[job["config"]], job["batch"])
    if job["trim"]:  # as make_dataset's batches come (dataset.trim_to_longest)
        token_ids = token_ids[:, :(np.nonzero(token_ids)[1].max() + 1 + 15) // 16 * 16]
    batch = {"images": keras.ops.convert_to_tensor(images),
             "token_ids": keras.ops.convert_to_tensor(token_ids)}
    del images
    model.train_on_batch(batch)  # warm-up: tracing and compilation
    seconds = []
    for _ in range(job["steps"]):
        start = time.perf_counter()
        model.train_on_batch(batch)  # returns numbers: the step has finished
        seconds.append(time.perf_counter() - start)
    return {"seconds_per_step": float(np.median(seconds)), **peak_memory()}


class _Loader:
    """What `train_one_epoch` reads of a DataLoader: batches, and their counts."""

    def __init__(self, micro_batches, steps):
        self.micro_batches, self.num_batches = micro_batches, len(micro_batches) * steps
        self.num_samples = self.num_batches * len(micro_batches[0][0])

    def __iter__(self):
        for _ in range(self.num_batches // len(self.micro_batches)):
            yield from self.micro_batches


def open_clip_accumulate(job):
    import importlib

    import torch

    from tests.convert import references

    module = references.open_clip_model_module()
    stand_in = types.ModuleType("open_clip")
    stand_in.__dict__.update({name: getattr(module, name)
                              for name in ("get_input_dtype", "CLIP", "CustomTextCLIP")})
    for name in ("get_tokenizer", "build_zero_shot_classifier", "IMAGENET_CLASSNAMES",
                 "OPENAI_IMAGENET_TEMPLATES"):
        setattr(stand_in, name, None)  # zero-shot evaluation: not run here
    sys.modules["open_clip"] = stand_in
    train = importlib.import_module("open_clip_train.train")
    loss = importlib.import_module(f"{references.REFERENCE_PACKAGE}.loss").ClipLoss()

    model = references.open_clip_model(CONFIGS[job["config"]]).train()
    model.output_dict = True  # as open_clip_train.main builds it
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    images, token_ids = batch_arrays(CONFIGS[job["config"]], job["batch"])
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    token_ids = torch.from_numpy(token_ids.astype(np.int64))
    size = job["batch"] // job["accumulation"]
    micro_batches = [(images[i:i + size], token_ids[i:i + size])
                     for i in range(0, job["batch"], size)]
    args = argparse.Namespace(
        device="cpu", precision="fp32", distill=False, accum_freq=job["accumulation"],
        skip_scheduler=True, horovod=False, grad_clip_norm=None, rank=0, local_rank=0,
        world_size=1, batch_size=size, log_every_n_steps=10**9, wandb=False)

    def epoch(steps):
        info = types.SimpleNamespace(dataloader=_Loader(micro_batches, steps),
                                     set_epoch=lambda epoch: None)
        train.train_one_epoch(model, {"train": info}, loss, 0, optimizer, None, None, None,
                              args)

    epoch(1)  # warm-up
    start = time.perf_counter()
    epoch(job["steps"])
    return {"seconds_per_step": (time.perf_counter() - start) / job["steps"], **peak_memory()}


WORKERS = {"keras_accumulate": keras_accumulate, "open_clip_accumulate": open_clip_accumulate}
