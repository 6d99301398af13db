"""Relation descriptors: reading an unloaded relation raises, declarations of ``Many`` are checked against
both schemas when first resolved."""

from __future__ import annotations

import pytest

from tierstore import ConfigError, Entity, Index, Many, NotLoaded, PartitionKey, Ref, SortKey

from _models import Customer, Order


def test_ref_raises_until_loaded() -> None:
    o = Order("c1", "o1", 1)
    assert isinstance(Order.customer, Ref)
    with pytest.raises(NotLoaded, match=r"Order\.customer"):
        _ = o.customer
    Order.customer.set(o, Customer("c1", "Ann"))
    assert o.customer == Customer("c1", "Ann")
    assert o == Order("c1", "o1", 1)  # a loaded relation is not part of equality or encoding


class Shelf(Entity, table="rel_shelves"):
    id: PartitionKey[str]
    books = Many["Book"]("Book", "shelf_id")


class Book(Entity, table="rel_books", indexes=[Index("by_isbn", "isbn", "shelf_id")]):
    shelf_id: PartitionKey[str]
    n: SortKey[int]
    isbn: str = "0"
    shelf = Ref(Shelf, "shelf_id")


def test_many_declaration_errors() -> None:
    class Parent(Entity, table="rel_parent"):
        id: PartitionKey[str]
        kids = Many(Book, "isbn", index="nope")
        kids2 = Many(Book, "n")
        kids3 = Many["Ghost"]("Ghost", "id")  # type: ignore[name-defined]
        kids4 = Many(Book, "shelf_id", by=("id", "nope"))

    with pytest.raises(ConfigError, match="no index"):
        Parent.kids.resolve()
    with pytest.raises(ConfigError, match="partition key"):
        Parent.kids2.resolve()
    with pytest.raises(ConfigError, match="Ghost"):
        _ = Parent.kids3.target
    with pytest.raises(ConfigError, match="by= names 2 fields for 1"):
        Parent.kids4.resolve()
    assert Many(Book, "isbn").fields == ("isbn",)
    with pytest.raises(ConfigError):
        Many(Book)
    with pytest.raises(ConfigError):
        Many(Book, "shelf_id", concurrency=0)
    with pytest.raises(ConfigError):
        Ref(Book)


def test_many_resolves_a_forward_reference_and_an_index() -> None:
    assert Shelf.books.target is Book
    assert Shelf.books.resolve() == (("id",), None)

    class Isbn(Entity, table="rel_isbn"):
        isbn: PartitionKey[str]
        copies = Many(Book, "isbn")

    assert Isbn.copies.resolve() == (("isbn",), "by_isbn")
    assert repr(Isbn.copies) == "Many(Book, 'isbn') at Isbn.copies"
    assert repr(Book.shelf) == "Ref(Shelf, 'shelf_id') at Book.shelf"


def test_a_loaded_many_reads_as_its_list() -> None:
    shelf = Shelf("s1")
    assert not Shelf.books.is_loaded(shelf)
    with pytest.raises(NotLoaded, match=r"Shelf\.books"):
        _ = shelf.books
    Shelf.books.set(shelf, [Book("s1", 1)])
    assert Shelf.books.is_loaded(shelf) and shelf.books == [Book("s1", 1)]
