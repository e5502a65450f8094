"""How much work one file may cost: the largest file each loader reads, how deeply its structure may nest, and
how long a text the chunker takes. Each limit is well above what real documents need; a file over one is refused
with an error that names the limit, so a hostile or broken file costs seconds, never an hour.
"""

from __future__ import annotations

MIB = 1024 * 1024

# Largest file each loader reads. A long novel is 1-3 MiB of text, a whole specification on one HTML page
# 10-20 MiB, SQuAD's training set 40 MiB of JSON. Larger corpora can be split into several files.
MAX_TEXT_BYTES = 64 * MIB  # .txt, .md, .markdown
MAX_HTML_BYTES = 32 * MIB  # .html, .htm
MAX_JSON_BYTES = 256 * MIB  # .json, .jsonl: the whole file is parsed before any record is used
MAX_FILE_BYTES = 1024 * MIB  # any format without a limit of its own

# Deepest element nesting an HTML page may reach. Browsers stop nesting at 512 (Blink's parser limit) and real
# pages stay far below it; deeper means tags left open by the thousand, which makes the parser search its stack
# for every end tag.
MAX_HTML_DEPTH = 512
# Most elements an HTML page may hold: real pages hold thousands, the largest specifications some hundreds of
# thousands. Each costs the parser about a kilobyte of memory.
MAX_HTML_ELEMENTS = 2_000_000
# Bytes handed to the HTML parser at a time: the limits above are checked between pieces.
HTML_FEED_BYTES = 64 * 1024

# Deepest nesting of arrays and objects in a JSON value. Records are a few levels deep; Python's parser gives up
# near 1,000 levels, and whatever walks the value afterwards recurses as well.
MAX_JSON_DEPTH = 200

# Longest text the chunker splits (one document's text, in characters): 64 MiB of plain text.
MAX_TEXT_CHARS = 64 * MIB
# Longest chunk, in characters per token of the chunk budget. Prose runs 4 to 5 characters to a token; a chunk
# longer than this holds text the tokenizer hardly counts (one "unknown" token for a 100-character word, none for
# some invisible characters) and is cut by characters instead.
MAX_CHARS_PER_TOKEN = 16
