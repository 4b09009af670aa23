# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""An untrusted XML file (a vendor's PSKC seed file) vetted before any XML library of the controller reads it.

The bytes are decoded here (UTF-8, or UTF-16 with a byte order mark; any other encoding is refused, whatever the
file declares), a document type declaration is refused (so no DTD is loaded and no entity is declared, expanded or
fetched), and the standard library's expat parser reads the text with DTDs, parameter entities and external entities
off, within limits of size, nesting depth and element count. What comes out is a new UTF-8 document written from the
parsed elements and text (no declaration of another encoding, no DTD, no comments or processing instructions), so the
library that reads it next (python-pskc, through lxml or ElementTree, whichever is installed) never reads anything
but what was vetted here. Every refusal names the line, never a value of the file."""

from __future__ import annotations

import codecs
import re
import typing as t
import xml.etree.ElementTree as ET  # noqa: N817 (the usual name)
from xml.parsers import expat

from .._common.validation import shown
from .entra_csv import SeedFileError

# The largest file read, in bytes: a PSKC key package takes about 1 kB, so this is over 10,000 tokens.
MAX_BYTES = 16 * 1024 * 1024
# The deepest nesting of elements: PSKC needs about 10 (KeyContainer/KeyPackage/Key/Data/Secret/EncryptedValue/...).
MAX_DEPTH = 32
# The most elements: a key package has about 20.
MAX_ELEMENTS = 500_000

UTF8 = "UTF-8"
UTF16 = "UTF-16"
# The encoding names a file may declare, per the encoding its bytes are in.
DECLARABLE = {UTF8: {"utf-8"}, UTF16: {"utf-16", "utf-16le", "utf-16be"}}
_S = r"[ \t\r\n]"
_DECLARATION_RE = re.compile(
    rf"<\?xml{_S}+version{_S}*={_S}*(?:\"(?P<version>[^\"<>]*)\"|'(?P<version_>[^'<>]*)')"
    rf"(?:{_S}+encoding{_S}*={_S}*(?:\"(?P<encoding>[^\"<>]*)\"|'(?P<encoding_>[^'<>]*)'))?"
    rf"(?:{_S}+standalone{_S}*={_S}*(?:\"(?:yes|no)\"|'(?:yes|no)'))?"
    rf"{_S}*\?>"
)
_DECLARATION_START_RE = re.compile(rf"<\?xml(?:{_S}|\?)")
# Markup that only a document type declaration holds (DOCTYPE, ENTITY, ...), in any case and spacing.
_DTD_RE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
DTD_REFUSED = "the file declares a document type or entities, which a PSKC file never needs; not read"


class VettedXml(t.NamedTuple):
    """A vetted document: its root element, the line of each element in the file, and the document to hand on."""

    root: ET.Element
    lines: dict[ET.Element, int]
    xml: bytes


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _raw(data: str | bytes) -> bytes:
    """The file's bytes. Text (as Ansible's file lookup gives it) is encoded back to the bytes it was read from."""
    if isinstance(data, str):
        # The file lookup decodes UTF-8 and keeps undecodable bytes as surrogates: surrogateescape restores them.
        try:
            raw = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise SeedFileError("the file's text holds characters that are not Unicode (lone surrogates)") from None
        # The lookup also strips trailing whitespace: from a UTF-16BE file, the last line break's second byte, which
        # leaves its first, a NUL byte, alone.
        if raw.startswith(codecs.BOM_UTF16_BE) and len(raw) % 2 and raw.endswith(b"\x00"):
            raw = raw[:-1]
        return raw
    return bytes(data)


def _decoded(raw: bytes) -> tuple[str, str]:
    """The file's text and its encoding (UTF-8 or UTF-16), from its byte order mark; other encodings refused."""
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise SeedFileError("the file is in UTF-32; only UTF-8 and UTF-16 (with a byte order mark) are read")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, codec = UTF16, "utf-16"  # the codec reads the byte order mark and drops it
    else:
        encoding, codec = UTF8, "utf-8-sig"
        if b"\x00" in raw[:4]:
            raise SeedFileError(
                "the file is in UTF-16 or UTF-32 without a byte order mark; only UTF-8 and UTF-16 with a byte order "
                "mark are read"
            )
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        # The position of the bad byte only: its line, counted in what decodes before it.
        before = raw[: exc.start].decode(codec, "replace")
        raise SeedFileError(f"line {_line(before, len(before))}: the file is not valid {encoding}") from None
    return text, encoding


def _without_declaration(text: str, encoding: str) -> str:
    """The text without its XML declaration, which is checked: XML 1.0, and an encoding that matches the bytes."""
    if not _DECLARATION_START_RE.match(text):
        return text
    declaration = _DECLARATION_RE.match(text)
    if declaration is None:
        raise SeedFileError("line 1: the XML declaration (<?xml ...?>) is malformed")
    version = declaration.group("version") or declaration.group("version_") or ""
    if version != "1.0":
        raise SeedFileError(f"line 1: the file declares XML version {shown(version)}; PSKC files are XML 1.0")
    declared = declaration.group("encoding") or declaration.group("encoding_")
    if declared is not None and declared.lower() not in DECLARABLE[encoding]:
        if declared.lower() in DECLARABLE[UTF16]:
            reason = " but has no UTF-16 byte order mark"
        elif declared.lower() in DECLARABLE[UTF8]:
            reason = " but is in UTF-16"
        else:
            reason = "; only UTF-8 and UTF-16 (with a byte order mark) are read: save the file as UTF-8"
        raise SeedFileError(f"line 1: the file declares the encoding {shown(declared)}{reason}")
    # Lines are kept: the declaration's own line breaks stay, so expat's line numbers are the file's.
    return "\n" * declaration.group(0).count("\n") + text[declaration.end() :]


def _parsed(text: str) -> tuple[ET.Element, dict[ET.Element, int]]:
    """The elements and text of ``text``, read by expat with DTDs and entities off and within the limits."""
    builder = ET.TreeBuilder()
    lines: dict[ET.Element, int] = {}
    parser = expat.ParserCreate(encoding="UTF-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.ordered_attributes = True
    parser.buffer_text = True
    depth = 0

    def refuse_dtd(*_declaration: t.Any) -> t.NoReturn:
        raise SeedFileError(f"line {parser.CurrentLineNumber}: {DTD_REFUSED}")

    def start(name: str, attributes: list[str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise SeedFileError(
                f"line {parser.CurrentLineNumber}: elements are nested more than {MAX_DEPTH} deep; a PSKC file "
                "needs far fewer"
            )
        if len(lines) >= MAX_ELEMENTS:
            raise SeedFileError(
                f"line {parser.CurrentLineNumber}: the file holds more than {MAX_ELEMENTS:,} elements; not read"
            )
        element = builder.start(name, dict(zip(attributes[::2], attributes[1::2])))
        lines[element] = parser.CurrentLineNumber

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(name)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    # Never reached after the check of the text; kept so that expat itself refuses any declaration too.
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.UnparsedEntityDeclHandler = refuse_dtd
    parser.NotationDeclHandler = refuse_dtd
    parser.ExternalEntityRefHandler = refuse_dtd
    try:
        parser.Parse(text.encode("utf-8"), True)
    except expat.ExpatError as exc:  # expat's message for the code: a fixed text, never the file's content
        raise SeedFileError(
            f"not a PSKC file that can be read: line {exc.lineno}, column {exc.offset + 1}: the XML is not "
            f"well-formed ({expat.ErrorString(exc.code)})"
        ) from None
    return builder.close(), lines


def vetted_xml(data: str | bytes) -> VettedXml:
    """``data`` parsed safely, and written anew as a UTF-8 document; SeedFileError naming the line otherwise."""
    raw = _raw(data)
    if len(raw) > MAX_BYTES:
        raise SeedFileError(f"the file is {len(raw):,} bytes long; at most {MAX_BYTES:,} are read")
    text, encoding = _decoded(raw)
    # A byte order mark twice over: the declaration after it is checked all the same.
    text = _without_declaration(text.lstrip("\ufeff"), encoding)
    dtd = _DTD_RE.search(text)
    if dtd:
        raise SeedFileError(f"line {_line(text, dtd.start())}: {DTD_REFUSED}")
    root, lines = _parsed(text)
    body = ET.tostring(root, encoding="unicode")
    return VettedXml(root, lines, b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8"))
