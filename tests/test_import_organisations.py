"""Importing organisations from CSV: the example file, parent rules, all-or-nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from monitor.errors import ImportRejected
from monitor.importer import import_organisations
from monitor.model import Organisation, OrganisationKind, parent_problem
from monitor.store import Inventory, UpsertResult

SCHOOL, LA = OrganisationKind.SCHOOL, OrganisationKind.LOCAL_AUTHORITY
EXAMPLE = Path(__file__).parent.parent / "config" / "organisations.example.csv"


def csv_text(text: str) -> io.StringIO:
    """The text as the CLI hands it over: an open text file read with newline=''."""
    return io.StringIO(text, newline="")


def rejected(text: str, inventory: Inventory) -> list[str]:
    """The problems of a rejected import, as 'where: reason' lines."""
    with pytest.raises(ImportRejected) as caught:
        import_organisations(csv_text(text), inventory, source="orgs.csv")
    assert caught.value.source == "orgs.csv"
    return [str(problem) for problem in caught.value.problems]


def test_example_file_imports_and_reimport_changes_nothing(inventory: Inventory) -> None:
    with EXAMPLE.open(encoding="utf-8-sig", newline="") as rows:
        first = import_organisations(rows, inventory, source=EXAMPLE.name)
    with EXAMPLE.open(encoding="utf-8-sig", newline="") as rows:
        again = import_organisations(rows, inventory, source=EXAMPLE.name)

    assert first == UpsertResult(created=6)
    assert again == UpsertResult(unchanged=6)
    assert inventory.get_organisation("school-riverside") == Organisation(
        "school-riverside", "Riverside School, Upper Site", OrganisationKind.SCHOOL
    )
    assert inventory.get_organisation("college-leeds-6th").parent_id == "la-leeds"


def test_bom_whitespace_case_and_blank_lines_are_tolerated(inventory: Inventory) -> None:
    text = "\ufeff ID , Name ,KIND,parent\r\n\r\n la1 , Leeds ,Local_Authority, \r\n\r\n\r\n"

    assert import_organisations(csv_text(text), inventory) == UpsertResult(created=1)
    assert inventory.get_organisation("la1") == Organisation(
        "la1", "Leeds", OrganisationKind.LOCAL_AUTHORITY
    )


def test_parent_may_already_be_stored(inventory: Inventory) -> None:
    import_organisations(csv_text("id,name,kind\ntrust1,T,academy_trust\n"), inventory)

    result = import_organisations(csv_text("id,name,kind,parent\ns1,S,school,trust1\n"), inventory)

    assert result == UpsertResult(created=1)
    assert inventory.get_organisation("s1").parent_id == "trust1"


def test_parent_rules_are_enforced(inventory: Inventory) -> None:
    text = (
        "id,name,kind,parent\n"
        "la1,LA,local_authority,\n"
        "s1,School,school,la1\n"
        "s2,School under a school,school,s1\n"
        "la2,LA under an LA,local_authority,la1\n"
        "s3,Nowhere,school,la-missing\n"
        "s4,Itself,school,s4\n"
    )
    assert rejected(text, inventory) == [
        f"line 4, column parent: {parent_problem(SCHOOL, SCHOOL)}",
        f"line 5, column parent: {parent_problem(LA, LA)}",
        "line 6, column parent: no organisation la-missing in this file or stored",
        "line 7, column parent: an organisation cannot be its own parent",
    ]
    assert inventory.list_organisations() == []


def test_every_bad_row_is_listed_and_nothing_is_stored(inventory: Inventory) -> None:
    import_organisations(csv_text("id,name,kind\nla1,Leeds,local_authority\n"), inventory)
    text = (
        "id,name,kind,parent\n"
        "la1,Leeds renamed,local_authority,\n"  # fine on its own: must not be stored either
        "bad id!,X,school,la1\n"
        "s1,,university,\n"
        "s2,Dup,school,la1\n"
        "s2,Dup again,school,la1\n"
        "s3,Too,many,values,here\n"
    )
    assert rejected(text, inventory) == [
        "line 3, column id: must be 1-64 letters, digits, '.', '_' or '-', starting with a"
        " letter or digit",
        "line 4, column name: is required",
        "line 4, column kind: 'university' is not one of local_authority, academy_trust,"
        " school, college",
        "line 6, column id: s2 is already on line 5",
        "line 7: has 5 values, but the header names 4 columns",
    ]
    assert inventory.list_organisations() == [
        Organisation("la1", "Leeds", OrganisationKind.LOCAL_AUTHORITY)
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "line 1: the file is empty: line 1 must name the columns (id, name, kind, parent)"),
        (
            "\n\n",
            "line 1: the file is empty: line 1 must name the columns (id, name, kind, parent)",
        ),
        ("id,name,kind,parent\n\n", "line 2: no rows after the header: nothing to import"),
        ("id,name\nla1,LA\n", "line 1: the required column kind is missing"),
        (
            "id,name,kind,colour\n",
            "line 1, column colour: unknown column; the columns are id, name, kind, parent",
        ),
        ("id,name,kind,kind\n", "line 1, column kind: is named twice"),
        ('id,name,kind\nla1,"unclosed,local_authority\n', "line 2: not readable as CSV:"),
    ],
)
def test_unusable_files_are_explained(inventory: Inventory, text: str, expected: str) -> None:
    problems = rejected(text, inventory)
    assert problems[0].startswith(expected)
    assert len(problems) == 1
