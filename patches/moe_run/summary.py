"""Picks fairseq's summary lines out of the workload's output, as it is written.

stdout and stderr are replaced by a tee that passes every write through unchanged and looks at each
complete line. fairseq logs through ``logging`` to sys.stdout (moe branch) or stderr; the handler
holds whatever sys.stdout is when logging is configured, which is this tee, because the workload is
imported after it is installed. Formats (fairseq_cli/eval_lm.py, moe branch):
    Evaluated 16,384 tokens in 12.3s (1332.03 tokens/s)
    valid Loss (base 2): 3.1234, Perplexity: 8.71
"""
import re
from typing import Optional

EVALUATED = re.compile(r"Evaluated ([\d,]+(?:\.\d+)?) tokens in ([\d.]+)s \(([\d.]+) tokens/s\)")
LOSS = re.compile(r"Loss \(base 2\): (-?[\d.]+|nan|inf), Perplexity: ([\d.]+|nan|inf)")
MAX_PARTIAL = 64 * 1024  # progress bars write \r without \n; don't let one endless line grow


class Summary:
    def __init__(self):
        self.throughput: Optional[dict] = None
        self.loss: Optional[float] = None
        self.perplexity: Optional[float] = None

    def scan(self, line: str) -> None:
        m = EVALUATED.search(line)
        if m:
            self.throughput = {"tokens": int(float(m.group(1).replace(",", ""))),
                               "seconds": float(m.group(2)), "tokens_per_s": float(m.group(3))}
        m = LOSS.search(line)
        if m:
            self.loss, self.perplexity = float(m.group(1)), float(m.group(2))


class LineTee:
    """A text stream that writes through to ``inner`` and hands complete lines to ``summary``."""

    def __init__(self, inner, summary: Summary):
        self._inner = inner
        self._summary = summary
        self._partial = ""

    def write(self, text: str) -> int:
        n = self._inner.write(text)
        if "\n" in text:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._summary.scan(line)
        else:
            self._partial = (self._partial + text)[-MAX_PARTIAL:]
        return n

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._inner, name)
