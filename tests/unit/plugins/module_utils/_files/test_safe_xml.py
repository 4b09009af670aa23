# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""safe_xml: an untrusted XML file decoded, checked and parsed with the standard library's expat (no DTD, no entity,
within limits), then written anew as a plain UTF-8 document. The PSKC files built on it, hostile ones among them,
under lxml and ElementTree: test_pskc_seeds.py."""

from __future__ import annotations

import codecs
import xml.etree.ElementTree as ET  # noqa: N817

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._files import safe_xml
from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import SeedFileError
from ansible_collections.tokenops.entra.plugins.module_utils._files.safe_xml import DTD_REFUSED, vetted_xml

DOC = '<r xmlns="urn:x" xmlns:p="urn:p"><p:a k="1 &amp; &lt;2&gt; &quot;q&quot;">caf\u00e9 &amp; &#x3c;</p:a></r>'
DECLARED = '<?xml version="1.0" encoding="{}"?>\n'


def refused(data) -> str:
    with pytest.raises(SeedFileError) as info:
        vetted_xml(data)
    return str(info.value)


def reread(data):
    """The vetted document as a fresh parser reads it: what the next library gets."""
    return ET.fromstring(vetted_xml(data).xml)


# ------------------------------------------------------------------------------------------------- what is kept
def test_the_document_is_written_anew_in_utf8_with_its_names_attributes_and_text():
    vetted = vetted_xml(DOC)
    assert vetted.xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<r ')
    again = ET.fromstring(vetted.xml)
    element = again.find("{urn:p}a")
    assert element is not None
    assert element.get("k") == '1 & <2> "q"'
    assert element.text == "caf\u00e9 & <"
    assert vetted.root.tag == "r"  # the names as written: prefixes and xmlns attributes are kept as they are
    assert vetted.root[0].tag == "p:a"


@pytest.mark.parametrize(
    "data",
    [
        DOC,
        DOC.encode("utf-8"),
        codecs.BOM_UTF8 + DOC.encode("utf-8"),
        "\ufeff" + DOC,
        DECLARED.format("UTF-8") + DOC,
        DECLARED.format("utf-8").replace('"', "'") + DOC,
        codecs.BOM_UTF16_LE + DOC.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + DOC.encode("utf-16-be"),
        (DECLARED.format("UTF-16") + DOC).encode("utf-16"),
        (DECLARED.format("UTF-16LE") + DOC).encode("utf-16"),
        '<?xml version="1.0" standalone="yes"?>' + DOC,
    ],
    ids=["text", "utf-8", "utf-8 bom", "text bom", "declared", "quoted", "utf-16le", "utf-16be", "utf-16 declared",
         "utf-16le declared", "standalone"],
)  # fmt: skip
def test_utf8_and_utf16_with_a_byte_order_mark_read_the_same(data):
    assert ET.tostring(reread(data)) == ET.tostring(reread(DOC))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_text_read_by_the_file_lookup_gives_back_its_bytes(encoding, line_end):
    """Ansible's file lookup decodes UTF-8, keeping the bytes it can't decode as surrogates (a UTF-16 file's BOM),
    and strips trailing whitespace (in UTF-16BE, half of the last line break)."""
    bom = {"utf-8": b"", "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}[encoding]
    raw = bom + (DOC + line_end).encode(encoding)
    text = raw.decode("utf-8", "surrogateescape").rstrip()  # as ansible.builtin.file reads it
    assert ET.tostring(reread(text)) == ET.tostring(reread(DOC))


def test_comments_processing_instructions_and_cdata_are_not_handed_on():
    data = '<?xml-stylesheet href="file:///etc/passwd"?><r><!-- c --><?pi x?><a><![CDATA[<b>&]]></a></r>'
    vetted = vetted_xml(data)
    assert b"<!--" not in vetted.xml and b"<?pi" not in vetted.xml and b"stylesheet" not in vetted.xml
    assert b"CDATA" not in vetted.xml
    assert ET.fromstring(vetted.xml).find("a").text == "<b>&"


def test_each_element_has_its_line():
    vetted = vetted_xml('<?xml version="1.0"?>\n<r>\n <a/>\n\n <b/></r>')
    assert [vetted.lines[element] for element in vetted.root.iter()] == [2, 3, 5]


# ------------------------------------------------------------------------------------------ encodings refused
@pytest.mark.parametrize(
    "data, message",
    [
        (DECLARED.format("UTF-7") + "<r/>", "line 1: the file declares the encoding 'UTF-7'; only UTF-8 and UTF-16"),
        (DECLARED.format("ISO-8859-1") + "<r/>", "line 1: the file declares the encoding 'ISO-8859-1'; only UTF-8"),
        (DECLARED.format("US-ASCII") + "<r/>", "line 1: the file declares the encoding 'US-ASCII'; only UTF-8"),
        (DECLARED.format("UTF-16") + "<r/>", "the encoding 'UTF-16' but has no UTF-16 byte order mark"),
        ((DECLARED.format("UTF-8") + "<r/>").encode("utf-16"), "the encoding 'UTF-8' but is in UTF-16"),
        ((DECLARED.format("UTF-7") + "<r/>").encode("utf-16"), "the encoding 'UTF-7'; only UTF-8"),
        (codecs.BOM_UTF16_LE * 2 + (DECLARED.format("UTF-7") + "<r/>").encode("utf-16-le"), "the encoding 'UTF-7'"),
        (codecs.BOM_UTF8 * 2 + (DECLARED.format("UTF-7") + "<r/>").encode(), "the encoding 'UTF-7'; only UTF-8"),
        ("<r/>".encode("utf-16-le"), "the file is in UTF-16 or UTF-32 without a byte order mark"),
        ("<r/>".encode("utf-16-be"), "the file is in UTF-16 or UTF-32 without a byte order mark"),
        ("<r/>".encode("utf-32"), "the file is in UTF-32"),
        (codecs.BOM_UTF32_BE + "<r/>".encode("utf-32-be"), "the file is in UTF-32"),
        (b"<r>\n\xe9</r>", "line 2: the file is not valid UTF-8"),
        (codecs.BOM_UTF16_LE + b"<\x00r\x00/", "line 1: the file is not valid UTF-16"),
        ('<?xml version="1.1"?><r/>', "line 1: the file declares XML version '1.1'; PSKC files are XML 1.0"),
        ("<?xml version=1.0?><r/>", "line 1: the XML declaration (<?xml ...?>) is malformed"),
        ('<?xml encoding="UTF-8"?><r/>', "line 1: the XML declaration (<?xml ...?>) is malformed"),
    ],
)
def test_other_encodings_are_refused(data, message):
    assert message in refused(data)


def test_a_second_declaration_is_not_taken():
    message = refused('<?xml version="1.0"?>\n<?xml version="1.0" encoding="UTF-7"?><r/>')
    assert message.startswith("not a PSKC file that can be read: line 2, column 1: the XML is not well-formed")


# ------------------------------------------------------------------------------------------------ DTD refused
@pytest.mark.parametrize(
    "declaration",
    [
        "<!DOCTYPE r>",
        '<!DOCTYPE r SYSTEM "file:///etc/passwd">',
        '<!DOCTYPE r [<!ENTITY e "x">]>',
        "<!doctype r>",
        "<! DOCTYPE r>",
    ],
)
def test_a_document_type_declaration_is_refused_naming_its_line(declaration):
    assert refused(f"<?xml version='1.0'?>\n\n{declaration}\n<r/>") == f"line 3: {DTD_REFUSED}"


def test_expat_refuses_a_declaration_the_text_check_did_not_see(monkeypatch):
    """The second line of defence: expat's own handlers, with the check of the text off."""
    monkeypatch.setattr(safe_xml, "_DTD_RE", safe_xml.re.compile(r"(?!)"))
    assert refused('<!DOCTYPE r [<!ENTITY e "x">]>\n<r>&e;</r>') == f"line 1: {DTD_REFUSED}"


def test_an_entity_without_a_declaration_is_not_well_formed():
    assert refused("<r>\n&e;</r>") == (
        "not a PSKC file that can be read: line 2, column 1: the XML is not well-formed (undefined entity)"
    )


# ----------------------------------------------------------------------------------------------------- limits
def test_a_file_over_the_size_limit_is_refused_before_it_is_read():
    data = b"<r>" + b" " * safe_xml.MAX_BYTES + b"</r>"
    assert refused(data) == f"the file is {len(data):,} bytes long; at most 16,777,216 are read"


def test_a_file_at_the_size_limit_is_read(monkeypatch):
    monkeypatch.setattr(safe_xml, "MAX_BYTES", 100)
    assert vetted_xml(b"<r>" + b" " * 93 + b"</r>").root.tag == "r"
    assert "at most 100 are read" in refused(b"<r>" + b" " * 94 + b"</r>")


def test_nesting_deeper_than_the_limit_is_refused_naming_the_line():
    deep = "<a>\n" * 10_000 + "</a>" * 10_000
    assert refused(deep) == "line 33: elements are nested more than 32 deep; a PSKC file needs far fewer"
    assert vetted_xml("<a>" * 32 + "</a>" * 32).root.tag == "a"


def test_more_elements_than_the_limit_are_refused(monkeypatch):
    monkeypatch.setattr(safe_xml, "MAX_ELEMENTS", 10)
    assert len(list(vetted_xml("<r>" + "<a/>" * 9 + "</r>").root.iter())) == 10
    assert refused("<r>\n" + "<a/>" * 10 + "</r>") == "line 2: the file holds more than 10 elements; not read"
