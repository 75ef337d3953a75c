"""A plain CSV file as byte columns in numpy: a million rows in about a second.

Python's csv module and `str.split` spend most of a history load creating one string object
per field. Here a file stays one `uint8` array: every delimiter is found in one pass, each
field is a (start, end) pair of offsets, and dates, amounts and codes are parsed by
vectorised arithmetic on the bytes; strings are made only for the identifiers, once each.

Only files in the plain shape ERPs and our own writer produce are taken: UTF-8, no quote
characters, lines ending all in LF or all in CRLF, no blank lines, no NUL bytes, every row
as wide as the header. Every method answers None when a value is not in its strict
canonical form, and the caller then falls back to its row-by-row path, which accepts the
lenient forms and names every problem by line and column. So the fast path never decides
anything on its own: it either gives exactly what the row path would give, or declines.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import numpy as np

BOM = b"\xef\xbb\xbf"
COMMA, NEWLINE, CR, DOT, DASH, ZERO = (ord(c) for c in ",\n\r.-0")
WORD = 8  # bytes read at once: a field's bytes come eight at a time as one uint64
# ASCII bytes that str.strip() would remove at an identifier's edge.
_EDGE_SPACE = np.zeros(256, dtype=bool)
_EDGE_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# _LOW_BYTES[k] keeps the first k bytes of a little-endian word.
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(WORD + 1)], dtype=np.uint64)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)
# Keys take rows × length bytes: one absurdly long id must not make that gigabytes.
MAX_KEY_BYTES = 256
# A longer amount field could overflow int64 minor units.
MAX_AMOUNT_CHARS = 2 * WORD


class Columns:
    """The fields of a plain CSV file as offsets into its bytes, column by column.

    `words[i]` is the eight bytes starting at offset i as one little-endian uint64 (an
    unaligned strided view, no copy), so one gather fetches eight bytes of every field and
    shifts pick single bytes out; a rows × width byte matrix is never built.
    """

    def __init__(self, buffer: bytearray, header: list[str], starts: np.ndarray, ends: np.ndarray):
        # `buffer` ends in at least 2 * WORD zero bytes: every word read at a field stays inside.
        self.data = np.frombuffer(buffer, dtype=np.uint8)
        self.words = np.ndarray(
            shape=(len(buffer) - WORD + 1,), dtype="<u8", buffer=buffer, strides=(1,)
        )
        self.header = header
        self.rows = starts.shape[0]
        self._starts2d, self._ends2d = starts, ends
        self._spans: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.header

    def _span(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Each field's offset and length in one column (made on first use, then kept)."""
        if name not in self._spans:
            column = self.header.index(name)
            starts = np.ascontiguousarray(self._starts2d[:, column])
            self._spans[name] = starts, self._ends2d[:, column] - starts
        return self._spans[name]

    def _words(self, starts: np.ndarray, lengths: np.ndarray, count: int) -> list[np.ndarray]:
        """The first `count` words of every field, bytes past its end zeroed."""
        last = len(self.words) - 1
        chunks = []
        for chunk in range(count):
            keep = np.clip(lengths - chunk * WORD, 0, WORD)
            word = self.words[np.minimum(starts + chunk * WORD, last)]
            chunks.append(word & _LOW_BYTES[keep])
        return chunks

    def codes(self, name: str, choices: tuple[str, ...]) -> np.ndarray | None:
        """Index into `choices` of every field, or None if any field is none of them."""
        starts, lengths = self._span(name)
        longest = max(len(c.encode()) for c in choices)
        words = self._words(starts, lengths, -(-longest // WORD))
        found = np.full(self.rows, -1, dtype=np.int8)
        for code, choice in enumerate(choices):
            encoded = choice.encode().ljust(len(words) * WORD, b"\0")
            match = lengths == len(choice.encode())
            for chunk, word in enumerate(words):
                expected = np.frombuffer(encoded[chunk * WORD : (chunk + 1) * WORD], dtype="<u8")
                match &= word == expected[0]
            found[match] = code
        return None if (found < 0).any() else found

    def days(self, name: str) -> np.ndarray | None:
        """Day numbers since 1970-01-01 of YYYY-MM-DD dates, each checked to exist."""
        starts, lengths = self._span(name)
        if (lengths != 10).any():
            return None
        head, tail = self._words(starts, lengths, 2)
        byte = [(head >> np.uint64(8 * i)) & np.uint64(0xFF) for i in range(WORD)]
        byte += [(tail >> np.uint64(8 * i)) & np.uint64(0xFF) for i in range(2)]
        if (byte[4] != DASH).any() or (byte[7] != DASH).any():
            return None
        number = np.zeros((3, self.rows), dtype=np.int32)
        for part, positions in enumerate(((0, 1, 2, 3), (5, 6), (8, 9))):
            for position in positions:
                digit = byte[position].astype(np.int32) - ZERO
                if ((digit < 0) | (digit > 9)).any():
                    return None
                number[part] = number[part] * 10 + digit
        year, month, day = number
        if (year < 1).any() or (month < 1).any() or (month > 12).any() or (day < 1).any():
            return None
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        if (day > _DAYS_IN_MONTH[month] + (leap & (month == 2))).any():
            return None
        return _days_from_civil(year.astype(np.int64), month.astype(np.int64), day.astype(np.int64))

    def minor_units(
        self, name: str, exponent: int, empty_is_zero: bool = False
    ) -> np.ndarray | None:
        """Integer minor units of plain decimal amounts in a currency with `exponent`
        decimals (ISO 4217: SEK '1234', '1234.5', '1234.50'; JPY '1234' only): digits, at
        most one dot with one to `exponent` digits after it; no sign, no spaces."""
        starts, lengths = self._span(name)
        if self.rows == 0:
            return np.zeros(0, dtype=np.int64)
        if ((lengths == 0).any() and not empty_is_zero) or lengths.max() > MAX_AMOUNT_CHARS:
            return None
        ends = starts + lengths
        # The last sixteen bytes before each field's end, as two words (bytes before the
        # field are masked out below by `inside`).
        last = [self.words[ends - WORD], self.words[np.maximum(ends - 2 * WORD, 0)]]
        value = np.zeros(self.rows, dtype=np.int64)
        power = np.ones(self.rows, dtype=np.int64)
        decimals = np.zeros(self.rows, dtype=np.int64)  # digits after the dot
        dotted = np.zeros(self.rows, dtype=bool)
        # From the last byte leftwards: digits add at the running power of ten; a dot
        # only records how many digits came after it.
        for back in range(int(lengths.max())):
            word, within = divmod(back, WORD)
            byte = ((last[word] >> np.uint64(8 * (WORD - 1 - within))) & np.uint64(0xFF)).astype(
                np.int64
            )
            inside = lengths > back
            digit = byte - ZERO
            is_digit = inside & (digit >= 0) & (digit <= 9)
            is_dot = inside & (byte == DOT)
            if (inside & ~is_digit & ~is_dot).any() or (is_dot & dotted).any():
                return None
            decimals[is_dot] = back
            dotted |= is_dot
            value += np.where(is_digit, digit * power, 0)
            power[is_digit] *= 10
        whole_digits = lengths - 1 - decimals
        if (dotted & ((decimals < 1) | (decimals > exponent) | (whole_digits < 1))).any():
            return None
        return value * 10 ** (exponent - decimals)

    def keys(self, name: str, words: int | None = None) -> np.ndarray | None:
        """The fields as sortable keys made of `words` words (default: enough for the
        longest): one uint64 each for fields of up to eight bytes, else fixed-width bytes
        (numpy 'S'). None if any field is empty, longer than the keys, or has space at an
        edge."""
        starts, lengths = self._span(name)
        longest = int(lengths.max(initial=1))
        words = words or max(1, -(-longest // WORD))
        if (lengths == 0).any() or longest > min(words * WORD, MAX_KEY_BYTES):
            return None
        edges = self.data[np.r_[starts, starts + lengths - 1]]
        if _EDGE_SPACE[edges].any():
            return None
        # A non-ASCII character at an edge may be Unicode space: those few are decoded.
        for row in np.unique(np.flatnonzero(edges >= 128) % max(self.rows, 1)):
            start = int(starts[row])
            text = self.data[start : start + int(lengths[row])].tobytes().decode("utf-8")
            if text != text.strip():
                return None
        chunks = self._words(starts, lengths, words)
        if words == 1:
            return chunks[0]
        return np.ascontiguousarray(np.stack(chunks, axis=1)).view(f"S{words * WORD}").ravel()


def key_words(keys: np.ndarray) -> int:
    """How many words the keys were made of, to make others comparable with them."""
    return 1 if keys.dtype.kind == "u" else keys.dtype.itemsize // WORD


def strings(keys: np.ndarray) -> np.ndarray:
    """Keys from `Columns.keys` back to an object array of str."""
    if keys.dtype.kind == "u":
        keys = keys.view(f"S{WORD}")  # little-endian: memory holds the bytes in order
    try:
        text = keys.astype(str)  # ASCII, the common case, at C speed
    except UnicodeDecodeError:
        text = np.char.decode(keys, "utf-8")
    return text.astype(object)


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def read_columns(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...]
) -> Columns | None:
    """The file's fields, or None when it is missing, unreadable or not plain."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # Room for a missing final line end and the zero padding Columns reads into.
            buffer = bytearray(size + 2 + 2 * WORD)
            if handle.readinto(memoryview(buffer)[:size]) != size:
                return None
    except OSError:
        return None
    begin = len(BOM) if buffer.startswith(BOM) else 0
    crlf = buffer.find(b"\r\n", begin, size) >= 0  # what Python's csv writer and Windows ERPs write
    line_end = b"\r\n" if crlf else b"\n"
    if size > begin and buffer[size - 1] != NEWLINE:
        buffer[size : size + len(line_end)] = line_end
        size += len(line_end)
    head_end = buffer.find(line_end, begin, size)
    if head_end <= begin:
        return None
    try:
        header = buffer[begin:head_end].decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    width = len(header)
    if (
        set(required) - set(header)
        or set(header) - set(required) - set(optional)
        or len(set(header)) != width
    ):
        return None
    if buffer.find(b'"', begin, size) >= 0 or buffer.find(b"\x00", begin, size) >= 0:
        return None  # (a blank line shows up below as a row of the wrong width)
    lone_cr = (
        buffer.count(b"\r", begin, size) != buffer.count(b"\n", begin, size)
        if crlf
        else buffer.find(b"\r", begin, size) >= 0
    )
    if lone_cr:
        return None
    data = np.frombuffer(buffer, dtype=np.uint8, count=size)
    if data[begin:].max(initial=0) >= 128:
        try:
            codecs.decode(memoryview(buffer)[begin:size], "utf-8")
        except UnicodeDecodeError:
            return None
    first = head_end + len(line_end)
    body = data[first:]
    is_delimiter = body == COMMA
    is_delimiter |= body == NEWLINE
    delimiters = np.flatnonzero(is_delimiter)
    del is_delimiter
    if len(delimiters) % width:
        return None
    # Every row ends at a line end and has none before its last field.
    newlines = body[delimiters] == NEWLINE
    if newlines.sum() != len(delimiters) // width or not newlines[width - 1 :: width].all():
        return None
    ends = delimiters.reshape(-1, width)
    ends += first
    if crlf:
        if (data[ends[:, -1] - 1] != CR).any():
            return None
        ends[:, -1] -= 1
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1]
    starts[:, 1:] += 1
    if len(ends):
        starts[0, 0] = first
        starts[1:, 0] = ends[:-1, -1] + len(line_end)
    return Columns(buffer, header, starts, ends)
