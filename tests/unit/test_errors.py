"""Error texts are bounded: a client-sized key or value never comes back whole in ``str(error)`` or ``repr``."""

from __future__ import annotations

import pytest

import tierstore
from tierstore import ConditionFailed, Entity, NotFound, PartitionKey, ValidationError, Version
from tierstore.errors import MAX_KEY, MAX_MESSAGE, bounded


class Note(Entity, table="err_notes"):
    id: PartitionKey[str]
    text: str = ""
    version: Version = 0


def test_bounded_keeps_short_text_and_cuts_long_text() -> None:
    assert bounded("abc", 10) == "abc"
    cut = bounded("x" * 1000, 100)
    assert len(cut) <= 100 and cut.startswith("x" * 50) and "+" in cut and "chars" in cut
    assert bounded("y" * 101, 100) != "y" * 101


def test_str_of_an_error_with_a_huge_key_is_bounded_but_the_attribute_keeps_it() -> None:
    key = "k" * 300
    err = NotFound("no such note", entity="Note", key=key)
    text = str(err)
    assert key not in text and len(text) < 100 + MAX_KEY
    assert err.key == key  # programs still get the whole key
    composite = ValidationError("bad", key=("a" * 10_000, 7))
    assert len(str(composite)) < 100 + MAX_KEY


def test_message_and_repr_are_bounded() -> None:
    err = ValidationError("limit must be a positive int, got " + "9" * 50_000)
    assert len(err.message) <= MAX_MESSAGE
    assert len(str(err)) <= MAX_MESSAGE
    assert len(repr(err)) <= MAX_MESSAGE + 40


def test_a_key_with_a_broken_repr_does_not_hide_the_error() -> None:
    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    assert "<Evil>" in str(NotFound("gone", key=Evil()))


async def test_condition_failed_on_a_300_character_key_does_not_echo_it() -> None:
    key = "n" * 300
    async with tierstore.connect("memory://", ["memory://"]) as db:
        notes = db.repository(Note)
        await notes.put(Note(key))
        with pytest.raises(ConditionFailed) as info:
            await notes.put(Note(key), if_not_exists=True)
    text = str(info.value)
    assert key not in text and key[:MAX_KEY] not in text
    assert len(text) < 300
    assert "Note" in text  # still says what failed
