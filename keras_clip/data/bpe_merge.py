"""`BytePairMerge`: CLIPTokenizer's in-graph byte-pair merge loop, on integer ids.

Every merge result of a byte-level BPE is a vocabulary token, so a word is
a row of token ids and a pair is the int64 key `left * V + right`. Each step
of the loop merges at once every pair that BPE's own order (merges replayed
by rank) is certain to merge before anything near it changes: a handful of
steps even for one 2,400-byte word, where merging one pair per step takes
thousands (`_pairs_to_merge`, `_reach_queries` say why it is exact).
"""

import numpy as np
import tensorflow as tf
from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

from keras_clip.data import bpe_vocabulary

# Byte strings are hashed as sum((byte + 1) * HASH_BASE**i) mod HASH_PRIME to
# find which substrings of a word are tokens (`_reach_queries`).
HASH_PRIME = 2**31 - 1
HASH_BASE = 1_000_003


class BytePairMerge:
    """The merge loop, mixed into `CLIPTokenizer` (reads its vocabulary and merges)."""

    def _set_merge_tables(self):
        """Integer tables for `_merge_words`, after checking the merge order.

        Every merge result is a token, so symbols are ids and a pair is the
        int64 key `left * V + right`.
        """
        pairs = [m.split(" ") for m in self.merges if "#version:" not in m.lstrip()]
        _check_merge_order(pairs, self.vocabulary)
        self._id_bound = max(self.vocabulary.values()) + 1
        self._no_rank = len(pairs)
        # As OpenAI's `bpe_ranks` dict: a pair listed twice keeps its last rank.
        ranks = {
            self.vocabulary[a] * self._id_bound + self.vocabulary[b]: rank
            for rank, (a, b) in enumerate(pairs)
        }
        self._pair_ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(ranks), tf.int64),
                tf.constant(list(ranks.values()), tf.int64),
            ),
            default_value=self._no_rank,
        )
        # Rank -> id of the merged token; the last entry answers "no rank".
        merged = ["".join(pair) for pair in pairs]
        self._merged_ids = np.array([self.vocabulary[t] for t in merged] + [-1], np.int64)
        byte_values, symbols = bytes_to_unicode()
        by_value = sorted(zip(map(ord, byte_values), symbols))
        end = bpe_vocabulary.END_OF_WORD
        self._byte_ids = np.array([self.vocabulary[s] for _, s in by_value], np.int64)
        self._final_ids = np.array(
            [self.vocabulary[s + end] for _, s in by_value], np.int64
        )
        self._set_token_hashes(merged)

    def _set_token_hashes(self, merged):
        """Hashes of the tokens BPE can produce (bytes, merge results), for `_reach_queries`."""
        byte_values, symbols = bytes_to_unicode()
        to_byte = {s: ord(b) for b, s in zip(byte_values, symbols)}
        end = bpe_vocabulary.END_OF_WORD
        tokens = [(s, False) for s in symbols] + [(s, True) for s in symbols]
        tokens += [
            (t[: -len(end)], True) if t.endswith(end) else (t, False) for t in merged
        ]
        tokens = [([to_byte[c] for c in t], final) for t, final in tokens]
        self._token_bytes = (  # longest without and with </w>
            max(len(t) for t, final in tokens if not final),
            max(len(t) for t, final in tokens if final),
        )
        self._token_span = max(self._token_bytes)
        keys = {self._token_key(_hash_bytes(t), final, len(t)) for t, final in tokens}
        keys = sorted(keys)
        self._token_hashes = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.ones([len(keys)], tf.int64)
            ),
            default_value=0,
        )

    def _token_key(self, hashed, final, length):
        """Table key of a byte string's hash, `</w>` flag and length (ints or tensors)."""
        return (hashed * 2 + final) * (self._token_span + 1) + length

    def _merge_words(self, words):
        """`(W,)` words → `(W, tokens)` ragged int32 ids, as OpenAI's `bpe()`.

        The state spans the N bytes of all the words: `symbol[x]` is the id
        of the symbol starting at byte x (-1 inside one) and `following[x]`
        where the next one starts. A step merges every pair whose rank is the
        lowest within its reach (`_reach_queries`): BPE, replaying merges by
        rank, would merge it before anything there changes. A run of equal
        pairs (`a a a`) merges every other pair from its left end, as `bpe()`
        does. Each word's lowest pair always merges, so the loop ends.
        """
        lengths = tf.cast(tf.strings.length(words), tf.int64)  # (W,)
        values = tf.io.decode_raw(tf.strings.reduce_join(words), tf.uint8)
        values = tf.cast(values, tf.int64)  # (N,)
        size = tf.size(values, out_type=tf.int64)
        word = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), lengths)  # (N,)
        splits = tf.concat([[0], tf.cumsum(lengths)], 0)  # (W + 1,)
        start, end = tf.gather(splits, word), tf.gather(splits, word + 1)  # (N,)
        position = tf.range(size)  # (N,)
        symbol = tf.where(
            position == end - 1,
            tf.gather(self._final_ids, values),
            tf.gather(self._byte_ids, values),
        )  # (N,)
        cells = self._reach_queries(values, position, start, end)

        def step(symbol, following, _):
            after = tf.minimum(following, size - 1)  # (N,) in range where stale
            paired = (symbol >= 0) & (following < end)
            pair = symbol * self._id_bound + tf.gather(symbol, after)
            rank = self._pair_ranks.lookup(pair)
            rank = tf.where(paired, rank, self._no_rank)  # (N,) at the left symbol
            merge = self._pairs_to_merge(rank, position, following, after, cells)
            merging = tf.cast(merge, tf.int32)
            swallowed = tf.math.unsorted_segment_max(merging, after, size) > 0
            symbol = tf.where(merge, tf.gather(self._merged_ids, rank), symbol)
            symbol = tf.where(swallowed, tf.constant(-1, tf.int64), symbol)
            following = tf.where(merge, tf.gather(following, after), following)
            return symbol, following, tf.reduce_any(merge)

        symbol, _, _ = tf.while_loop(
            lambda symbol, following, go: go, step, (symbol, position + 1, size > 0)
        )
        alive = symbol >= 0
        return tf.RaggedTensor.from_value_rowids(
            tf.cast(tf.boolean_mask(symbol, alive), tf.int32),
            tf.boolean_mask(word, alive),
            nrows=tf.size(lengths, out_type=tf.int64),
        )  # (W, tokens)

    def _pairs_to_merge(self, rank, position, following, after, cells):
        """`(N,)` bool: the pairs (at their left symbol) that a step merges."""
        ranked = rank < self._no_rank
        # Sparse table: level k holds the lowest rank of the 2**k pairs from x.
        table = [rank]
        for k in range(1, (2 * self._token_span).bit_length()):
            half = 2 ** (k - 1)
            table.append(tf.minimum(table[-1][:-half], table[-1][half:]))
        table = tf.concat(table, 0)
        reach_low = tf.minimum(tf.gather(table, cells[0]), tf.gather(table, cells[1]))
        lowest = ranked & (tf.gather(reach_low, after) == rank)
        # Number the runs of one pair; a run merges if all its pairs are
        # lowest in reach, at its 1st, 3rd, ... pair.
        same_next = ranked & (tf.gather(rank, after) == rank)
        after_same = tf.math.unsorted_segment_max(
            tf.cast(same_next, tf.int32), after, tf.size(rank, out_type=tf.int64)
        ) > 0
        run_start = ranked & ~after_same
        firsts = tf.reshape(tf.where(run_start), [-1])  # (runs,)
        runs = tf.size(firsts, out_type=tf.int64)
        run = tf.cumsum(tf.cast(run_start, tf.int64)) - 1  # (N,)
        run = tf.where(ranked, run, runs)  # unranked bytes join a spare run
        settled = tf.math.unsorted_segment_min(tf.cast(lowest, tf.int32), run, runs + 1)
        width = tf.where(ranked, following - position, 1)  # a run's symbols are alike
        nth = (position - tf.gather(tf.concat([firsts, [0]], 0), run)) // width
        return ranked & (tf.gather(settled, run) > 0) & (nth % 2 == 0)

    def _reach_queries(self, values, position, start, end):
        """Per byte m, two sparse-table cells whose min is the lowest rank within reach.

        Merges run in rank order and a merge's result only forms pairs that
        rank later (`_check_merge_order`). So the pair of rank r meeting at
        byte m merges as it stands unless, first, its left symbol joins some
        T on its left (or its right symbol one on its right). T + left is
        then a token ending at m, and T is either the neighbour as it stands
        or was made by merging a pair inside it, at a rank below r. Hence if
        no pair starting in [m - longest token ending at m, m + longest token
        starting at m) ranks below r, the pair is BPE's next merge there.
        Tokens are found by hashing every substring of up to `_token_span`
        bytes; a hash collision can only lengthen a reach, which delays a
        merge but never makes a wrong one.
        """
        span = self._token_span
        lengths = tf.range(1, span + 1, dtype=tf.int64)  # (S,)
        powers, inverses = _hash_powers(self.max_text_bytes + 4)  # words are no longer
        local = position - start  # (N,)
        terms = (values + 1) * tf.gather(powers, local) % HASH_PRIME
        prefix = tf.concat([[0], tf.cumsum(terms)], 0)  # (N + 1,)
        stop = position[:, None] + lengths  # (N, S): bytes [x, stop)
        hashes = tf.gather(prefix, tf.minimum(stop, tf.size(values, out_type=tf.int64)))
        hashes = (hashes - prefix[:-1, None]) % HASH_PRIME
        hashes = hashes * tf.gather(inverses, local)[:, None]
        final = tf.cast(stop == end[:, None], tf.int64)
        keys = self._token_key(hashes % HASH_PRIME, final, lengths)
        found = (stop <= end[:, None]) & (self._token_hashes.lookup(keys) > 0)  # (N, S)
        longest_from = tf.reduce_max(tf.where(found, lengths, 0), axis=1)  # (N,)
        begin = position[:, None] - lengths  # (N, S): bytes [begin, m), not word-final
        cell = tf.maximum(begin, 0) * span + lengths - 1  # found[begin, l]
        ending = tf.gather(tf.reshape(found, [-1]), cell)
        ending &= begin >= start[:, None]
        low = position - tf.reduce_max(tf.where(ending, lengths, 0), axis=1)  # (N,)
        high = position + longest_from  # (N,)
        # A range of width w is covered by two cells of level floor(log2(w)).
        levels = [max(w.bit_length() - 1, 0) for w in range(2 * span + 1)]
        level = tf.gather(levels, high - low)
        level = tf.cast(level, tf.int64)
        sizes = tf.maximum(tf.size(values, out_type=tf.int64) - (2 ** np.arange(
            (2 * span).bit_length()) - 1), 0)
        offset = tf.gather(tf.cumsum(sizes, exclusive=True), level)  # (N,)
        return offset + low, offset + high - 2**level


def _check_merge_order(pairs, vocabulary):
    """Raises unless each merge comes after the merges making its two symbols.

    BPE training writes merges in that order, and the merge loop relies on
    it: a merge's result then only forms pairs that rank later.
    """
    made = {a + b: rank for rank, (a, b) in enumerate(pairs)}
    early = [f"{a} {b}" for rank, (a, b) in enumerate(pairs)
             if made.get(a, -1) >= rank or made.get(b, -1) >= rank]
    unknown = [f"{a} {b}" for a, b in pairs if a + b not in vocabulary]
    if early or unknown:
        raise ValueError(
            f"The merges are not a trained BPE's: {len(early)} come before a "
            f"merge making one of their symbols (e.g. {early[:3]}) and "
            f"{len(unknown)} make a token the vocabulary lacks (e.g. "
            f"{unknown[:3]}). Pass merges in training order, each after the "
            f"merges making its symbols, with every result in the vocabulary."
        )


def _hash_bytes(values):
    """The hash `_reach_queries` computes in the graph, of a list of byte values."""
    terms = ((v + 1) * pow(HASH_BASE, i, HASH_PRIME) for i, v in enumerate(values))
    return sum(terms) % HASH_PRIME


def _hash_powers(count):
    """`HASH_BASE ** i` and its inverse mod `HASH_PRIME`, for `i < count`."""
    powers = [pow(HASH_BASE, i, HASH_PRIME) for i in range(count)]
    inverses = [pow(HASH_BASE, -i, HASH_PRIME) for i in range(count)]
    return np.array(powers, np.int64), np.array(inverses, np.int64)
