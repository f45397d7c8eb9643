"""All-gather of embeddings across the processes of a `torch.distributed` run."""

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather as differentiable_all_gather


def world_size():
    """Processes in this run's default group (1 outside torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gather(image_embeddings, text_embeddings):
    """Gathers both `(b, D)` embeddings from all processes along the batch.

    Returns `(all_image, all_text, row_offset, num_replicas)`, or None
    outside a multi-process run. Every process holds the same number of
    rows (batches are whole), so the offset is `rank * b`. The gather is
    differentiable: each process gets back the sum of every process's loss
    gradient with respect to its rows.
    """
    size = world_size()
    if size == 1:
        return None
    all_image = torch.cat(differentiable_all_gather(image_embeddings), dim=0)
    all_text = torch.cat(differentiable_all_gather(text_embeddings), dim=0)
    row_offset = dist.get_rank() * image_embeddings.shape[0]
    return all_image, all_text, row_offset, size


def all_sum(tensors):
    """The tensors summed over the processes (as they are outside a multi-process run)."""
    if world_size() == 1:
        return tensors
    summed = tuple(tensor.clone() for tensor in tensors)
    for tensor in summed:
        dist.all_reduce(tensor)
    return summed
