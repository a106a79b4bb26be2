"""A minimal generation loop over the model on the paged cache: each step is one ForwardBatch of every sequence's
uncached tokens (prefill chunks and decode rows mixed)."""

import math

import torch

from tokasaurus_ext.models.batch import ForwardBatch

PAGE = 16


class Sequences:
    """Pages for a few sequences and the bookkeeping to build forward batches over them."""

    def __init__(self, prompts: list[list[int]], max_len: int) -> None:
        self.tokens = [list(p) for p in prompts]
        self.cached = [0] * len(prompts)  # tokens already in the KV cache
        pages = math.ceil(max_len / PAGE)
        self.table = torch.arange(len(prompts) * pages, dtype=torch.int32).view(len(prompts), pages).flip(1)
        self.num_pages = len(prompts) * pages

    def batch(self, chunk: int | None = None) -> tuple[ForwardBatch, list[int]]:
        """The next forward over every sequence with uncached tokens (at most `chunk` each), and which
        sequences' logits its rows are (those with new tokens)."""
        ids, pos, slots, cu, kv_lens, last, owners = [], [], [], [0], [], [], []
        for s, toks in enumerate(self.tokens):
            new = toks[self.cached[s] :][: chunk or None]
            positions = range(self.cached[s], self.cached[s] + len(new))
            ids += new
            pos += positions
            slots += [int(self.table[s, p // PAGE]) * PAGE + p % PAGE for p in positions]
            cu.append(cu[-1] + len(new))
            self.cached[s] += len(new)
            kv_lens.append(self.cached[s])
            if new:
                last.append(cu[-1] - 1)
                owners.append(s)
        batch = ForwardBatch(
            input_ids=torch.tensor(ids),
            positions=torch.tensor(pos),
            slots=torch.tensor(slots),
            cu_q_lens=torch.tensor(cu, dtype=torch.int32),
            block_table=self.table,
            kv_lens=torch.tensor(kv_lens, dtype=torch.int32),
            max_q_len=max(b - a for a, b in zip(cu, cu[1:], strict=False)),
            logit_rows=torch.tensor(last),
        )
        return batch, owners

    def pending(self) -> bool:
        return any(c < len(t) for c, t in zip(self.cached, self.tokens, strict=True))


def generate(model, prompts: list[list[int]], steps: int, chunk: int | None = None):
    seqs = Sequences(prompts, max(map(len, prompts)) + steps + 1)
    cache = model.new_kv_cache(seqs.num_pages, PAGE)
    logits = torch.empty(len(prompts), model.cfg.vocab_size)
    while seqs.pending():  # (chunked) prefill: a sequence's logits come from the step that finishes it
        batch, owners = seqs.batch(chunk)
        logits[owners] = model.forward(batch, cache)
    first_logits = logits.clone()
    for _ in range(steps):
        for s, t in enumerate(logits.argmax(-1).tolist()):
            seqs.tokens[s].append(t)
        batch, owners = seqs.batch()
        logits[owners] = model.forward(batch, cache)
    return [t[len(p) :] for t, p in zip(seqs.tokens, prompts, strict=True)], first_logits
