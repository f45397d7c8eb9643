"""Caption cleaning that needs Python: mojibake repair and HTML entities."""

import html

import ftfy

# ftfy repairs text in independent segments: lines, and runs of at most this
# many characters of a longer line (ftfy's `max_decode_length`, 1,000,000 by
# default). Shorter segments bound the cost of reading a huge line; only
# lines over this long, which hold far more tokens than fit, can differ
# from ftfy's default.
SEGMENT_CHARS = 2**13
_CONFIG = ftfy.TextFixerConfig(max_decode_length=SEGMENT_CHARS)


def clean_text(text, enough=None):
    """Repairs a caption the way CLIP's tokenizer expects.

    ftfy fixes mis-decoded Unicode ("cafÃ©" → "café"), HTML entities are
    unescaped twice (web captions are often escaped twice: "&amp;amp;"), and
    the ends are stripped. This needs Python, so it runs where Python runs:
    when TFRecords are written and on eager tokenizer calls with Python
    strings; a graph (a `tf.data` map, a SavedModel) gets text as it is.

    With `enough` (a number of characters), only the leading segments are
    cleaned, doubling until their cleaned text holds more than `enough`
    characters besides whitespace runs, or is the whole text: the start of
    the result is then that of the whole text's cleaning (ftfy decides per
    segment and carries nothing forward but whether it has seen HTML), and
    the cost is bounded by `enough`, not by the length of `text`.
    """
    if enough is None:
        return _clean(text)
    head = 2 * enough
    while head < len(text):
        cut = _segment_boundary(text, head)
        cleaned = _clean(text[:cut])
        if len(" ".join(cleaned.split())) > enough:
            return cleaned
        head = 2 * cut
    return _clean(text)


def _clean(text):
    return html.unescape(html.unescape(ftfy.fix_text(text, _CONFIG))).strip()


def _segment_boundary(text, position):
    """The first place at or after `position` where ftfy starts a segment."""
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position) + 1 or len(text)
    chunks = -(-(position - line_start) // SEGMENT_CHARS)
    return min(line_start + chunks * SEGMENT_CHARS, line_end)
