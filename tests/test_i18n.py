"""The Chinese catalogue is complete, compiled from itself, and templates translate their text."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import polib
import pytest
from django.utils import translation

ROOT = Path(__file__).resolve().parents[1]
PO_PATH = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO_PATH = PO_PATH.with_suffix(".mo")
TEMPLATES = ROOT / "templates"


def catalogue() -> polib.POFile:
    return polib.pofile(str(PO_PATH))


def test_it_translates_every_entry() -> None:
    po = catalogue()
    entries = [entry for entry in po if not entry.obsolete]
    assert len(entries) > 100
    untranslated = [entry.msgid for entry in entries if not entry.translated()]
    assert untranslated == []
    for entry in entries:
        if entry.msgid_plural:
            assert all(text.strip() for text in entry.msgstr_plural.values()), entry.msgid
        else:
            assert entry.msgstr.strip(), entry.msgid


def test_it_has_no_fuzzy_entries() -> None:
    po = catalogue()
    assert [entry.msgid for entry in po if "fuzzy" in entry.flags] == []
    assert not po.metadata_is_fuzzy
    assert po.metadata["Plural-Forms"] == "nplurals=1; plural=0;"


def test_it_keeps_placeholders_in_translations() -> None:
    placeholder = re.compile(r"%\(\w+\)[sd]|\{\w*\}")
    for entry in catalogue():
        if entry.msgid_plural:
            translations = list(entry.msgstr_plural.values())
            wanted = set(placeholder.findall(entry.msgid_plural))
        else:
            translations = [entry.msgstr]
            wanted = set(placeholder.findall(entry.msgid))
        for text in translations:
            assert set(placeholder.findall(text)) == wanted, entry.msgid


def test_it_commits_the_mo_compiled_from_the_po(tmp_path: Path) -> None:
    compiled = tmp_path / "django.mo"
    catalogue().save_as_mofile(str(compiled))
    assert MO_PATH.read_bytes() == compiled.read_bytes(), (
        "locale/zh_Hans/LC_MESSAGES/django.mo is stale: compile it from the .po with polib"
    )


def test_it_translates_model_choices_for_hospital_staff() -> None:
    from hospitals.models import Alliance, Grade, HRScope, Role, Tier

    with translation.override("zh-hans"):
        assert str(Tier.TOWNSHIP_CLINIC.label) == "乡镇卫生院/社区卫生服务中心"
        assert str(Tier.COUNTY_HOSPITAL.label) == "县医院"
        assert str(Tier.HEALTH_BUREAU.label) == "卫健委"
        assert str(Role.CLINIC_DOCTOR.label) == "基层医生"
        assert str(Alliance.Kind.COMMUNITY.label) == "医共体"
        assert str(Grade.THIRD.label) == "三级"
        assert str(HRScope.NATIONAL.label) == "全国HR"
    with translation.override("en"):
        assert str(Tier.HEALTH_BUREAU.label) == "Health bureau"


# --- Templates: visible text goes through {% translate %} -----------------------------------


def shows_no_words(text: str) -> bool:
    """Return whether ``text`` is only punctuation, symbols (arrows, ×, icons) and numbers.

    Any letter, Latin or Chinese, is a word someone reads and must come from the catalogue.
    """
    return all(char.isspace() or unicodedata.category(char)[0] in "PSN" for char in text)


# Django never renders what is inside {% comment %} ... {% endcomment %}.
COMMENT_BLOCK = re.compile(r"{%\s*comment\b.*?%}.*?{%\s*endcomment\s*%}", re.DOTALL)
TAG = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}", re.DOTALL)
BLOCK_TRANSLATE = re.compile(
    r"{%\s*blocktrans(?:late)?\b.*?{%\s*endblocktrans(?:late)?\s*%}", re.DOTALL
)
SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
HTML_TAG = re.compile(r"<[^>]*>", re.DOTALL)
ATTRIBUTE = re.compile(r'\b(?:title|alt|placeholder|aria-label|data-confirm)="([^"]*)"')


def untranslated_text(source: str) -> list[str]:
    """Return pieces of ``source`` a person would read that no translate tag covers."""
    found = []
    without_blocks = BLOCK_TRANSLATE.sub(" ", COMMENT_BLOCK.sub(" ", source))
    for value in ATTRIBUTE.findall(without_blocks):
        rest = TAG.sub("", value)
        if not shows_no_words(rest):
            found.append(value)
    text = SCRIPT_STYLE.sub(" ", COMMENT.sub(" ", without_blocks))
    text = HTML_TAG.sub("\n", TAG.sub("\n", text))
    for piece in text.split("\n"):
        piece = re.sub(r"&\w+;", "", piece).strip()
        if piece and not shows_no_words(piece):
            found.append(piece)
    return found


def test_the_checker_finds_untranslated_text() -> None:
    assert untranslated_text("<p>Hello</p>") == ["Hello"]
    assert untranslated_text('<a title="Open">{% translate "x" %}</a>') == ["Open"]
    assert untranslated_text("<p>你好</p>") == ["你好"]
    assert untranslated_text('<p>{% translate "Hello" %} · {{ name }}</p>') == []
    assert untranslated_text("<p>{% blocktranslate %}Hi {{ n }}{% endblocktranslate %}</p>") == []
    assert untranslated_text("<button>↑</button><span>1×2 · ⟳ 📷</span>") == []
    assert untranslated_text("<span>15 fps</span>") == ["15 fps"]
    assert untranslated_text("{% comment %}Include it so.{% endcomment %}<p>Shown</p>") == ["Shown"]


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda path: str(path.relative_to(TEMPLATES))
)
def test_it_wraps_template_text_in_translate_tags(template: Path) -> None:
    assert untranslated_text(template.read_text(encoding="utf-8")) == []
