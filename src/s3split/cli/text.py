"""Text a command prints that it did not write (file names, S3 keys, header names, messages
quoting them): shown, never obeyed. A control character in it (an escape sequence, a bell, a
newline in a path) printed raw could recolour, move the cursor and overwrite what the command
says, or break a line of the summary; it is printed as its escape (``\\x1b``, ``\\n``)."""

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """``text`` with each control character (C0, DEL, C1) written as its escape."""
    if text.isprintable():
        return text
    return "".join(_escape(c) if _control(c) else c for c in text)


def one_line(text: str) -> str:
    """A message in one line: runs of whitespace (a stack trace's newlines, a quoted record's)
    as one space, other control characters escaped."""
    return shown(" ".join(str(text).split()))


def _control(c: str) -> bool:
    code = ord(c)
    return code < 0x20 or 0x7F <= code < 0xA0


def _escape(c: str) -> str:
    return _ESCAPES.get(c) or f"\\x{ord(c):02x}"
