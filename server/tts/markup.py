"""Markdown and HTML to the plain words a listener should hear.

An agent's answer may be markdown (an LLM asked for it, ``output_style:
markdown``): eSpeak reads ``**Title**`` as "asterisk asterisk title asterisk
asterisk". :func:`markup_to_text` parses the text with markdown-it-py (a
maintained CommonMark parser: emphasis, links, lists, tables, code and HTML
follow the spec's rules, which regexes get wrong on nesting, escapes and
intraword ``_``) and keeps only what is meant to be read:

* emphasis, headings, block quotes: their words; ~~struck-out~~ text: skipped
  (it is what the writer took back: "~~$10~~ $8" is said "eight dollars");
* links: the link text; images: the alt text; autolinks: the URL (the
  normaliser then speaks its host);
* inline code: its content; fenced code blocks: skipped (code is not read aloud);
* bullet lists: each item on its own; numbered lists: each item with its number
  ("1. Buy puts" stays "1. Buy puts");
* tables: one line per row, cells separated by commas;
* HTML tags: dropped, the text between them kept; entities decoded.

Blocks (paragraphs, headings, list items, table rows) are separated by a blank
line, which :func:`server.tts.normalize.split_sentences` treats as a sentence
break, so a heading or a bullet without a full stop is still said on its own.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["markup_to_text"]

# "commonmark" plus GFM tables and ~~strikethrough~~. Indented code blocks are
# off: plain prose indented by four spaces must still be spoken.
_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"]).disable("code")
_TAG = re.compile(r"<[^>]*>")
_BREAK_TAG = re.compile(r"<\s*(br|/p|/div|/li|/h[1-6]|/tr)\b[^>]*>", re.IGNORECASE)


def _inline(token: Token) -> str:
    out: list[str] = []
    struck = 0
    for child in token.children or []:
        if child.type in ("s_open", "s_close"):
            struck += 1 if child.type == "s_open" else -1
        elif struck:
            continue
        elif child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type == "image":
            out.append(child.content)  # the alt text
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "html_inline" and _BREAK_TAG.fullmatch(child.content.strip()):
            out.append(" ")
        # Openers/closers of emphasis, links, strikethrough and other inline HTML say nothing.
    return "".join(out).strip()


def _html_block(content: str) -> list[str]:
    text = _BREAK_TAG.sub("\n\n", content)
    return [" ".join(_TAG.sub(" ", part).split()) for part in text.split("\n\n")]


def markup_to_text(text: str) -> str:
    """Plain text of markdown/HTML ``text``: blocks separated by a blank line.

    Plain prose comes back as it was (single line breaks inside a paragraph
    become spaces). Raises TypeError for anything but ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"markup_to_text expects str, got {type(text).__name__}")
    blocks: list[str] = []
    lists: list[list[int | None]] = []  # per open list: [next item number] (None: bullets)
    row: list[str] | None = None
    prefix = ""
    for token in _MD.parse(text):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start")
            lists.append([int(start) if start is not None else 1] if kind == "ordered_list_open" else [None])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open" and lists and lists[-1][0] is not None:
            number = lists[-1][0]
            prefix = f"{number}. "
            lists[-1][0] = number + 1
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            blocks.append(", ".join(cell for cell in row if cell))
            row = None
        elif kind == "inline":
            words = _inline(token)
            if row is not None:
                row.append(words)
            elif words:
                blocks.append(prefix + words)
                prefix = ""
        elif kind == "html_block":
            blocks.extend(_html_block(token.content))
        # fence (code), hr and the open/close tokens of paragraphs, headings and
        # quotes add nothing: their inline children carry the words.
    return "\n\n".join(b for b in blocks if b.strip())
