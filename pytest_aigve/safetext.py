"""Text from file names, prompts and suites, made safe for where it is shown.

A file name can carry ANSI escapes (which recolour or rewrite a terminal), a right-to-left override
(which makes `evil‮4pm.exe` read as `evilexe.mp4`), or Markdown that a PR comment would render as a
link, an image or an @mention. Each place of output gets the text with those made visible or inert.
"""

from __future__ import annotations

import re
import unicodedata

# bidi controls and other invisible format characters that can reorder or hide text
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _is_unsafe(char: str) -> bool:
    if char in "\n\t":
        return False
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def printable(text: str) -> str:
    """Control, bidi and zero-width characters shown as escapes (newlines and tabs kept)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_visible(c) if _is_unsafe(c) else c for c in text)


def one_line(text: str) -> str:
    return printable(text.replace("\r\n", " ").replace("\n", " "))


# with [ and ] escaped no link or image can form, so ( ) and ! stay readable
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]|~])")


def markdown_text(text: str) -> str:
    """Inline Markdown that renders as the literal text: no links, images, emphasis, HTML or mentions."""
    escaped = _MD_SPECIAL.sub(r"\\\1", one_line(text))
    escaped = escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # @mentions and #references notify people; bare URLs become links: break them with entities
    return (escaped.replace("#", "&#35;").replace("@", "&#64;").replace("://", ":&#47;&#47;")
            .replace("www.", "www&#46;"))
