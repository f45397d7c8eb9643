"""ProgressLine: one progress line that suits where it is written.

On a terminal the line is redrawn in place (at most five times a second);
in a file or a pipe, where carriage returns would pile up, a plain line is
printed every `every` updates and at the end. Used for training steps
(`training/progress.py`) and for `make-tfrecords`' pairs.
"""

import shutil
import sys
import time

REDRAW_SECONDS = 0.2


def duration(seconds):
    """`"42 s"`, `"3 min 05 s"`, `"2 h 07 min"`."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class ProgressLine:
    """Shows `text()` as progress; `text` is only called when a line is shown.

    Args:
        every: updates between printed lines when not on a terminal.
        stream: where to write (default: standard output).
        redraw: redraw in place; default: when `stream` is a terminal.
    """

    def __init__(self, every=50, stream=None, redraw=None):
        self.stream = stream or sys.stdout
        if redraw is None:
            redraw = getattr(self.stream, "isatty", lambda: False)()
        self.redraw, self.every = redraw, max(1, every)
        self._drawn_at = None  # time of the last redraw; None: nothing drawn
        self._printed = None  # count of the last printed line

    def update(self, count, text, last=False):
        """Shows progress after `count` updates (`last`: the final one)."""
        if self.redraw:
            now = time.monotonic()
            if last or self._drawn_at is None or now - self._drawn_at >= REDRAW_SECONDS:
                self._drawn_at = now
                width = shutil.get_terminal_size((100, 20)).columns - 1
                self.stream.write("\r" + text()[:width].ljust(width))
                self.stream.flush()
        elif (last or count % self.every == 0) and count != self._printed:
            self._printed = count
            print(text(), file=self.stream, flush=True)

    def print(self, message):
        """A line of its own, below the progress line."""
        self.end()
        print(message, file=self.stream, flush=True)

    def end(self):
        """Ends a redrawn line, so that later output starts on a new one."""
        if self.redraw and self._drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn_at = None
