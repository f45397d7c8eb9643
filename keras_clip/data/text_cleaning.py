"""Caption cleaning that needs Python: mojibake repair and HTML entities."""

import html

import ftfy


def clean_text(text):
    """Repairs a caption the way CLIP's tokenizer expects.

    ftfy fixes mis-decoded Unicode ("cafÃ©" → "café"), HTML entities are
    unescaped twice (web captions are often escaped twice: "&amp;amp;"), and
    the ends are stripped. This needs Python, so it runs where Python runs:
    when TFRecords are written and on eager tokenizer calls with Python
    strings; a graph (a `tf.data` map, a SavedModel) gets text as it is.
    """
    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()
