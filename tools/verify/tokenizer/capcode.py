"""TokenMonster's capcode: the reversible case and space markers its vocabularies are written in.

A TokenMonster vocabulary with capcode stores its tokens in an encoded form: capitals are lowercased behind
markers, and a "delete" marker lets a token that begins with a space also serve in the middle of a word. What a
token stands for in the text is therefore what *decoding* its bytes gives, and one token's delete marker can
remove the first character of the next token: a per-token byte count cannot see that (see
tools.verify.tokenizer.shipped_table, the context rule).

Semantics, as documented by the capcode project and observed in real vocabularies:
- level 2 (full): `C` uppercases the next character; `W` uppercases the next word (letters up to a space or a
  character other than a number, apostrophe or combining mark); `D` deletes the next character that is not a
  marker. The text never contains a literal `C`, `W` or `D`: those letters are themselves written as markers.
- level 1 (delete only): byte 0x7F deletes the next byte; a literal 0x7F in the text is replaced by 0x14.
- level 0: no markers.
Case mapping is Unicode's one-character mapping (a character whose mapping is longer is left as it is).
Invalid UTF-8 bytes pass through unchanged, one byte at a time.
"""

from __future__ import annotations

import unicodedata

CHARACTER, WORD, DELETE = "C", "W", "D"
NO_CAPCODE_DELETE, NO_CAPCODE_SUBSTITUTE = 0x7F, 0x14
APOSTROPHES = ("'", "\u2019")


def _category(ch: str | None) -> str:
    return unicodedata.category(ch) if ch else ""


def _is_upper(ch: str | None) -> bool:
    return _category(ch) == "Lu"


def _is_lower(ch: str | None) -> bool:
    return _category(ch) == "Ll"


def _is_letter(ch: str | None) -> bool:
    return _category(ch).startswith("L")


def _is_number(ch: str | None) -> bool:
    return _category(ch).startswith("N")


def _is_mark(ch: str | None) -> bool:
    return _category(ch) in ("Mn", "Mc", "Me")


def _upper(ch: str) -> str:
    mapped = ch.upper()
    return mapped if len(mapped) == 1 else ch


def _lower(ch: str) -> str:
    mapped = ch.lower()
    return mapped if len(mapped) == 1 else ch


# --- decoding -------------------------------------------------------------------------------------------------


def decode(data: bytes, level: int = 2) -> tuple[bytes, bool]:
    """The text `data` stands for, and whether a delete is still pending at its end (it removes the next
    token's first character)."""
    if level == 1:
        return _decode_delete_only(data)
    if level != 2:
        return data, False
    out: list[str] = []
    in_word = in_char = delete = ignore = False
    for ch in data.decode("utf-8", "surrogateescape"):  # an invalid byte becomes one lone surrogate, kept as is
        if ch == CHARACTER:
            in_char, in_word = True, False
            continue
        if ch == WORD:
            in_word, in_char, ignore = True, False, True
            continue
        if ch == DELETE:
            delete = True
            continue
        if delete:
            delete = False  # in encoded text the deleted character is the space that let a token start with one
        elif ch == " ":
            out.append(ch)
            if not ignore:
                in_word = False
        elif in_char:
            in_char = False
            out.append(_upper(ch))
        elif in_word:
            if _is_upper(ch) or _is_lower(ch):
                out.append(_upper(ch))
            else:
                out.append(ch)
                if not (_is_number(ch) or ch in APOSTROPHES or _is_mark(ch)):
                    in_word = False
        else:
            out.append(ch)
        ignore = False
    return "".join(out).encode("utf-8", "surrogateescape"), delete


def _decode_delete_only(data: bytes) -> tuple[bytes, bool]:
    out = bytearray()
    delete = False
    for byte in data:
        if byte == NO_CAPCODE_DELETE:
            delete = True
        elif delete:
            delete = False
        else:
            out.append(byte)
    return bytes(out), delete


# --- encoding (for the judge's probe encoder) -------------------------------------------------------------------


def encode(text: str, level: int = 2) -> str:
    """The capcode form of `text`, which `decode` turns back into it (up to Unicode case-mapping quirks)."""
    if level == 1:
        return _encode_delete_only(text)
    if level != 2:
        return text
    out: list[str] = []  # units: one character, a marker group such as "D " or "DW ", or a marked letter
    last = last2 = None
    in_word = multi_letter = False
    word_marker = 0  # index in `out` of the W that opened the current run of capitals
    run_letters: list[int] = []  # indices in `out` of the letters of that run after its first

    def after_letter(prev: str | None) -> bool:
        return _is_letter(prev) or prev in APOSTROPHES or _is_mark(prev)

    for ch in text:
        if in_word:
            if _is_upper(ch):
                if not after_letter(last):
                    out.append("D ")
                multi_letter = True
                run_letters.append(len(out))
                out.append(_lower(ch))
            else:
                if _is_lower(ch):
                    # Not a word in capitals after all: its first letter alone was a capital.
                    in_word = False
                    out[word_marker] = out[word_marker].replace(WORD, CHARACTER)
                    if multi_letter:
                        for index in run_letters:  # every later capital gets its own marker, glued by D
                            if out[index - 1] == "D ":
                                out[index - 1] = "DC "
                            else:
                                out[index] = "DC " + out[index]
                    if not after_letter(last):
                        out.append("D ")
                elif _is_number(ch):
                    if not _is_number(last):
                        out.append("D ")
                elif not (ch in APOSTROPHES or _is_mark(ch)):
                    in_word = False
                out.append(ch)
        elif _is_lower(ch):
            if not (last == " " or _is_lower(last) or (_is_letter(last2) and last in APOSTROPHES) or _is_mark(last)):
                out.append("D ")
            out.append(ch)
        elif _is_upper(ch):
            if last == " ":
                out[-1] = "W "  # the space stays, written after the marker
            else:
                out.append("DW ")
            word_marker = len(out) - 1
            out.append(_lower(ch))
            in_word, multi_letter, run_letters = True, False, []
        elif _is_number(ch):
            if not (last == " " or _is_number(last)):
                out.append("D ")
            out.append(ch)
        else:
            out.append(ch)
        last2, last = last, ch
    return "".join(out)


def _encode_delete_only(text: str) -> str:
    out: list[str] = []
    last = last2 = None
    for ch in text:
        if _is_letter(ch):
            if not (last == " " or _is_letter(last) or (_is_letter(last2) and last in APOSTROPHES) or _is_mark(last)):
                out.append(chr(NO_CAPCODE_DELETE) + " ")
        elif _is_number(ch) and not (last == " " or _is_number(last)):
            out.append(chr(NO_CAPCODE_DELETE) + " ")
        out.append(chr(NO_CAPCODE_SUBSTITUTE) if ord(ch) == NO_CAPCODE_DELETE else ch)
        last2, last = last, ch
    return "".join(out)
