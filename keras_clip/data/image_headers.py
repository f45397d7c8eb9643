"""What an image's header declares, read before anything is decoded.

Decompression bombs: a few kilobytes can declare 50,000 × 50,000 pixels,
and TensorFlow allocates what the header declares before decoding. So every
decode first reads the declared size from the header (JPEG, PNG, GIF, BMP,
WebP and JPEG XL, all that `tf.io.decode_image` reads; see
`declared_size`) and an assert op refuses, before the decode op
runs, any image over `max_pixels` (default `MAX_IMAGE_PIXELS`, 100 million:
a 300 MB decoded image) with a `tf.errors.InvalidArgumentError` naming the
size and the limit. A GIF counts every frame: TensorFlow decodes them all.
Bytes of no known format go to the decoder, which refuses them.
"""

import numpy as np
import tensorflow as tf

# The default `max_pixels`: what an image may declare (a GIF: all its frames
# together) to be decoded at all. The TFRecord writer refuses the same.
MAX_IMAGE_PIXELS = 100_000_000

# === Declared size ===
# Signatures as TensorFlow's decode_image_op.cc detects them, in its order.
_JPEG, _PNG, _GIF, _BMP = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM"
_JXL_CODESTREAM, _JXL_CONTAINER = b"\xff\x0a", b"\0\0\0\x0cJXL \r\n\x87\n"
# JPEG XL's fixed aspect ratios (width / height), for ratio codes 1–7.
_JXL_RATIOS = np.array([[1, 1], [1, 1], [12, 10], [4, 3], [3, 2], [16, 9], [5, 4], [2, 1]])
# The GIF walk's steps (~50 µs each): a block, or up to 64 full sub-blocks
# and one more. Encoders write 255-byte sub-blocks, so a frame takes ~4
# steps; a GIF that needs more than this (over ~5,000 frames, or sub-blocks
# no encoder writes) is refused, its size to decode unknown.
_GIF_MAX_STEPS = 20_000
_GIF_RUN = 64


def _bytes_at(image_bytes, offset, length):
    """`(length,)` int64: the bytes from `offset`, zeros past the end."""
    size = tf.cast(tf.strings.length(image_bytes), tf.int64)
    offset = tf.clip_by_value(tf.cast(offset, tf.int64), 0, size)
    piece = tf.strings.substr(image_bytes, offset, tf.constant(length, tf.int64))
    return tf.cast(tf.io.decode_raw(piece, tf.uint8, fixed_length=length), tf.int64)


def _uint(values, big_endian=False):
    """Bytes (a static-length int64 vector) → the unsigned integer they encode."""
    shifts = 8 * np.arange(values.shape[0], dtype=np.int64)
    return tf.reduce_sum(tf.bitwise.left_shift(values, shifts[::-1] if big_endian else shifts))


def _starts_with(values, signature, offset=0):
    expected = np.frombuffer(signature, np.uint8).astype(np.int64)
    return tf.reduce_all(values[offset : offset + len(expected)] == expected)


def _sized(width, height):
    return tf.stack([width, height, width * height])


def _jpeg_size(image_bytes):
    """JPEG: the frame header, as libjpeg reads it."""
    height, width = tf.unstack(tf.cast(tf.image.extract_jpeg_shape(image_bytes)[:2], tf.int64))
    return _sized(width, height)


def _png_size(image_bytes):
    """PNG: the IHDR chunk, which must come first: big-endian width, height."""
    head = _bytes_at(image_bytes, 12, 12)  # chunk type, width, height
    is_header = _starts_with(head, b"IHDR")
    return _sized(tf.where(is_header, _uint(head[4:8], True), 0),
                  tf.where(is_header, _uint(head[8:12], True), 0))


def _bmp_size(image_bytes):
    """BMP: int32 width and height at 18 and 22, read as TensorFlow's decoder
    reads them whatever the header's version; a negative height is top-down."""
    head = _bytes_at(image_bytes, 18, 8)
    signed = [_uint(head[:4]), _uint(head[4:])]
    width, height = [tf.abs(tf.where(v >= 2**31, v - 2**32, v)) for v in signed]
    return _sized(width, height)


def _webp_size(image_bytes):
    """WebP: its first chunk, lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`)."""
    head = _bytes_at(image_bytes, 12, 18)  # chunk type, size, 10 bytes of payload
    payload = head[8:]
    # Lossy: 14-bit sizes after a 3-byte frame tag and the start code 9d 01 2a.
    lossy = [tf.bitwise.bitwise_and(_uint(payload[i : i + 2]), 0x3FFF) for i in (6, 8)]
    # Lossless: after the signature byte 0x2f, 14 bits each of width - 1, height - 1.
    bits = _uint(payload[1:5])
    lossless = [tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, shift), 0x3FFF) + 1
                for shift in (0, 14)]
    # Extended: 24 bits each of canvas width - 1, height - 1 after 4 bytes of flags.
    extended = [_uint(payload[4:7]) + 1, _uint(payload[7:10]) + 1]
    kinds = [(_starts_with(head, b"VP8 "), lossy), (_starts_with(head, b"VP8L"), lossless),
             (_starts_with(head, b"VP8X"), extended)]
    size = tf.zeros([2], tf.int64)
    for is_kind, kind_size in kinds:
        size = tf.where(is_kind, tf.stack(kind_size), size)
    return _sized(size[0], size[1])


def _read_bits(bits, position, count):
    """`count` (≤ 30) bits from `position` of an LSB-first bit vector, as an integer."""
    places = tf.range(30, dtype=tf.int64)
    taken = tf.gather(bits, tf.minimum(position + places, bits.shape[0] - 1))
    return tf.reduce_sum(tf.where(places < count, tf.bitwise.left_shift(taken, places), 0))


def _jxl_u32(bits, position):
    """JPEG XL's `U32(BitsOffset(9|13|18|30, 1))`: a 2-bit selector, that many
    bits, plus one. Returns the value and the position after it."""
    count = tf.gather(tf.constant([9, 13, 18, 30], tf.int64), _read_bits(bits, position, 2))
    return _read_bits(bits, position + 2, count) + 1, position + 2 + count


def _jxl_codestream_start(image_bytes):
    """Where a JPEG XL container's codestream starts: in its first `jxlc` box,
    or after the 4-byte index of its first `jxlp` box; -1 if neither."""
    length = tf.cast(tf.strings.length(image_bytes), tf.int64)

    def next_box(position, start):
        head = _bytes_at(image_bytes, position, 16)  # size, type, maybe a 64-bit size
        size, header = _uint(head[:4], True), tf.constant(8, tf.int64)
        # Size 1: a 64-bit size follows the type; size 0: the box runs to the end.
        header = tf.where(size == 1, tf.constant(16, tf.int64), header)
        size = tf.where(size == 1, _uint(head[8:16], True),
                        tf.where(size == 0, length - position, size))
        start = tf.where(_starts_with(head, b"jxlp", 4), position + header + 4, start)
        start = tf.where(_starts_with(head, b"jxlc", 4), position + header, start)
        # A box shorter than its header would never advance: stop there.
        return tf.where(size < header, length, position + size), start

    minus_one = tf.constant(-1, tf.int64)
    _, start = tf.while_loop(lambda position, start: (start < 0) & (position + 8 <= length),
                             next_box, (tf.constant(0, tf.int64), minus_one))
    return start


def _jxl_size(image_bytes):
    """JPEG XL: the SizeHeader that opens the codestream (bits LSB first)."""
    start = tf.cond(_starts_with(_bytes_at(image_bytes, 0, 12), _JXL_CONTAINER),
                    lambda: _jxl_codestream_start(image_bytes),
                    lambda: tf.constant(0, tf.int64))
    head = _bytes_at(image_bytes, start, 11)  # signature, then at most 68 bits
    valid = (start >= 0) & _starts_with(head, _JXL_CODESTREAM)
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(head[2:, None], np.arange(8)), 1)
    bits = tf.reshape(bits, [72])
    # Small: sizes that are multiples of 8 up to 256, as 5 bits of size / 8 - 1.
    small = bits[0] == 1
    large_height, after_height = _jxl_u32(bits, 1)
    height = tf.where(small, (_read_bits(bits, 1, 5) + 1) * 8, large_height)
    ratio_at = tf.where(small, tf.constant(6, tf.int64), after_height)
    ratio = _read_bits(bits, ratio_at, 3)
    large_width, _ = _jxl_u32(bits, ratio_at + 3)
    explicit_width = tf.where(small, (_read_bits(bits, ratio_at + 3, 5) + 1) * 8, large_width)
    numerator, denominator = tf.unstack(tf.gather(_JXL_RATIOS, ratio))
    width = tf.where(ratio == 0, explicit_width, height * numerator // denominator)
    return _sized(tf.where(valid, width, 0), tf.where(valid, height, 0))


def _walk_gif(image_bytes):
    data = tf.io.decode_raw(image_bytes, tf.uint8)  # (N,)
    length = tf.size(data, out_type=tf.int64)

    def at(positions):
        inside = positions < length
        values = tf.gather(data, tf.where(inside, positions, 0))
        return tf.where(inside, tf.cast(values, tf.int64), 0)

    def colour_table(flags):
        return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(
            tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7)), 0)

    def step(position, in_chain, width, height, pixels, done):
        # In a chain: skip a run of full sub-blocks (255, then 255 bytes),
        # then one sub-block, and the chain's end (a length of 0) if next.
        strides = position + 256 * tf.range(_GIF_RUN, dtype=tf.int64)
        full = tf.reduce_sum(tf.math.cumprod(tf.cast(at(strides) == 255, tf.int64)))
        last = position + 256 * full
        length_byte = at(last)
        after = last + 1 + length_byte
        chain_ends = (length_byte == 0) | (at(after) == 0)
        chain_next = tf.where(length_byte == 0, after, tf.where(chain_ends, after + 1, after))
        # Between chains: an extension (0x21, a label), an image (0x2C, a
        # 10-byte descriptor, a local colour table if flagged, a code size
        # byte), or the end (a trailer, junk).
        head = at(position + tf.range(10, dtype=tf.int64))
        is_extension, is_image = head[0] == 0x21, head[0] == 0x2C
        block_next = tf.where(is_extension, position + 2,
                              position + 11 + colour_table(head[9]))
        frame = ~in_chain & is_image
        frame_width, frame_height = _uint(head[5:7]), _uint(head[7:9])
        return (tf.where(in_chain, chain_next, block_next),
                tf.where(in_chain, ~chain_ends, is_extension | is_image),
                tf.where(frame, tf.maximum(width, frame_width), width),
                tf.where(frame, tf.maximum(height, frame_height), height),
                pixels + tf.where(frame, frame_width * frame_height, 0),
                ~in_chain & ~is_extension & ~is_image)

    zero = tf.constant(0, tf.int64)
    start = 13 + colour_table(at(tf.constant(10, tf.int64)))  # after the global table
    state = (start, tf.constant(False), zero, zero, zero, tf.constant(False))
    position, _, width, height, pixels, done = tf.while_loop(
        lambda position, *state: ~state[-1] & (position < length), step, state,
        maximum_iterations=_GIF_MAX_STEPS)
    # Cut short: the frames left unread are unknown, so it is refused.
    unfinished = ~done & (position < length)
    pixels = tf.where(unfinished, tf.constant(-1, tf.int64),
                      tf.maximum(pixels, width * height))
    return tf.stack([width, height, pixels])


# Traced once: run eagerly, the walk's many small ops would dominate.
_gif_walk = tf.function(_walk_gif, input_signature=[tf.TensorSpec([], tf.string)],
                        autograph=False)


def _gif_size(image_bytes):
    """GIF: the widest and tallest frame, and the pixels of all frames.

    TensorFlow's decoder (giflib's DGifSlurp) ignores the logical screen:
    its canvas is the largest frame width by the largest frame height, and
    it decodes every frame even to return the first. So this walks the
    blocks after the global colour table to every image descriptor: each
    block is followed by a chain of sub-blocks (a length byte, then that
    many bytes). Pixels are -1 for a GIF that needs over `_GIF_MAX_STEPS`.
    """
    return _gif_walk(image_bytes)


def _unknown_size(image_bytes):
    del image_bytes  # no known format: the decoder will refuse it
    return tf.zeros([3], tf.int64)


def declared_size(image_bytes):
    """`(width, height, pixels)` int64 that encoded `image_bytes` declare.

    Read from the header alone, for every format `tf.io.decode_image`
    decodes, the way its decoder reads it. `pixels` is `width * height`,
    but for a GIF that of all frames (see `_gif_size`). Zeros for bytes of
    no known format or a header too short to say: the decoder refuses those.
    """
    prefix = _bytes_at(image_bytes, 0, 12)
    longer_than_12 = tf.strings.length(image_bytes) > 12
    found = tf.stack([
        _starts_with(prefix, _JPEG), _starts_with(prefix, _PNG),
        _starts_with(prefix, _GIF), _starts_with(prefix, _BMP),
        _starts_with(prefix, b"RIFF") & _starts_with(prefix, b"WEBP", 8) & longer_than_12,
        _starts_with(prefix, _JXL_CODESTREAM) | _starts_with(prefix, _JXL_CONTAINER),
    ])
    first = tf.argmax(tf.cast(found, tf.int32), output_type=tf.int32)
    branch = tf.where(tf.reduce_any(found), first + 1, 0)  # 0: no known format
    sizes = [_unknown_size, _jpeg_size, _png_size, _gif_size, _bmp_size, _webp_size, _jxl_size]
    return tf.switch_case(branch, [lambda size=size: size(image_bytes) for size in sizes])


def refuse_oversized(image_bytes, max_pixels):
    """An assert op: fails if the header declares more than `max_pixels` pixels."""
    width, height, pixels = tf.unstack(declared_size(image_bytes))
    too_large = tf.strings.format(
        "The image header declares {}x{} pixels ({} to decode, counting every "
        "GIF frame): over max_pixels={}, so it is refused before decoding. "
        "Pass a larger max_pixels (default image_ops.MAX_IMAGE_PIXELS) to accept it.",
        (width, height, pixels, max_pixels))
    unknown = (f"The GIF's blocks go on past {_GIF_MAX_STEPS} steps of reading (over "
               "~5,000 frames, or sub-blocks no encoder writes), so what it would "
               "decode is unknown: refused before decoding.")
    message = tf.where(pixels < 0, unknown, too_large)
    return tf.debugging.Assert((pixels >= 0) & (pixels <= max_pixels), [message])
