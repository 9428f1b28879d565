"""Prompts kept in git: a folder (`DIR/<name>/vN.yaml`, `labels.yaml`) written by export and read by import,
which creates what the store lacks, moves labels to match (audited) and refuses a file that rewrites a version."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.prompts import (
    Message,
    PromptConflict,
    PromptError,
    PromptNotFound,
    PromptSpec,
    Variable,
    create_version,
    export_prompts,
    get_version,
    import_prompts,
    label_history,
    list_versions,
    read_folder,
    set_label,
    write_folder,
)
from sluice.store import create_engine, migrate
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401

TRICKY = ("Line one: {{ name }}\n  indented - with a dash\n\ttab # not a comment\n"
          "trailing spaces   \n\"quotes\" and 'apostrophes' ünïcödé 👋\n{% if vip %}VIP{% endif %}")


async def fill(engine: AsyncEngine) -> None:
    await create_version(engine, "support", PromptSpec(
        kind="text", template="Hello {{ name }}", variables=(Variable("name"),), message="first", author="ana"))
    await create_version(engine, "support", PromptSpec(
        kind="text", template=TRICKY, variables=(Variable("name", description="who"), Variable("vip", default=False)),
        config={"temperature": 0.2, "stop": ["\n\n"]}, semver="1.1.0", message="multi-line\ncommit message"))
    await create_version(engine, "triage", PromptSpec(
        kind="chat", messages=(Message("system", "Sort tickets.\nBe terse.\n"), Message("user", "{{ ticket }}")),
        variables=(Variable("ticket"),), config={"model": "gpt-4o-mini",
                                                 "response_format": {"type": "json_object"}}))
    await set_label(engine, "support", "production", 1)
    await set_label(engine, "support", "staging", 2)


def files(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): path.read_text(encoding="utf-8")
            for path in sorted(root.rglob("*")) if path.is_file()}


async def test_export_import_into_a_fresh_store_and_export_again_gives_identical_files(
        engine: AsyncEngine, tmp_path: Path) -> None:
    await fill(engine)
    first = tmp_path / "first"
    write_folder(first, await export_prompts(engine))
    assert sorted(files(first)) == ["support/labels.yaml", "support/v1.yaml", "support/v2.yaml",
                                    "triage/labels.yaml", "triage/v1.yaml"]
    text = files(first)
    assert text["support/labels.yaml"] == "production: 1\nstaging: 2\n"
    assert text["triage/labels.yaml"] == "{}\n"
    assert "messages:\n- role: system\n  content: |\n    Sort tickets.\n    Be terse.\n" in text["triage/v1.yaml"]
    assert "variables:\n- ticket\n" in text["triage/v1.yaml"]  # a bare name when it has no more

    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    await migrate(fresh_url)
    fresh = create_engine(fresh_url)
    try:
        report = await import_prompts(fresh, read_folder(first), source="first", actor="ci")
        assert report.created == ("support@1", "support@2", "triage@1") and report.unchanged == 0
        assert [(e.label, e.to_version, e.actor, e.reason) for e in report.moved] == [
            ("production", 1, "ci", "import from first"), ("staging", 2, "ci", "import from first")]
        assert (await get_version(fresh, "support@1.1.0")).spec.template == TRICKY
        second = tmp_path / "second"
        write_folder(second, await export_prompts(fresh))
        assert files(second) == files(first)
        again = await import_prompts(fresh, read_folder(second), source="second")
        assert (again.created, again.unchanged, again.moved, again.names) == ((), 3, (), ())
    finally:
        await fresh.dispose()


async def test_a_new_file_in_git_is_created_and_labels_follow_audited(engine: AsyncEngine, tmp_path: Path) -> None:
    await fill(engine)
    root = tmp_path / "prompts"
    write_folder(root, await export_prompts(engine, ["support"]))
    assert sorted(path.name for path in root.iterdir()) == ["support"]
    (root / "support" / "v3.yaml").write_text(
        "semver: 2.0.0\nmessage: friendlier\nvariables: [name]\ntemplate: |\n  Hi there, {{ name }}!\n")
    (root / "support" / "labels.yaml").write_text("production: 3\nstaging: 2\n")
    report = await import_prompts(engine, read_folder(root), source="prompts", actor="ci")
    assert report.created == ("support@3",) and report.unchanged == 2 and report.names == ("support",)
    assert (await get_version(engine, "support@production")).spec.template == "Hi there, {{ name }}!\n"
    last = (await label_history(engine, "support", "production"))[-1]
    assert (last.from_version, last.to_version, last.actor, last.reason) == (1, 3, "ci", "import from prompts")
    # export writes the hand-written file in its own layout once; a file already in it is left untouched
    assert write_folder(root, await export_prompts(engine, ["support"])) == [root / "support" / "v3.yaml"]
    assert write_folder(root, await export_prompts(engine, ["support"])) == []
    assert (await import_prompts(engine, read_folder(root), source="prompts")).names == ()


async def test_a_file_that_rewrites_a_stored_version_is_refused_naming_it_and_nothing_changes(
        engine: AsyncEngine, tmp_path: Path) -> None:
    await fill(engine)
    write_folder(tmp_path, await export_prompts(engine))
    (tmp_path / "support" / "v1.yaml").write_text("message: first\nauthor: ana\nvariables: [name]\n"
                                                  "template: Hello, {{ name }}\n")
    (tmp_path / "triage" / "v2.yaml").write_text("messages: [{role: user, content: hi}]\n")
    with pytest.raises(PromptConflict, match=r"support/v1\.yaml differs from support@1 in the store \(template\): "
                                             r"versions never change; put the change in a new file, support/v3\.yaml"):
        await import_prompts(engine, read_folder(tmp_path), source="prompts")
    assert [version.version for version in await list_versions(engine, "triage")] == [1]  # checked before writing
    (tmp_path / "support" / "v1.yaml").write_text("message: reworded\nauthor: ana\nvariables: [name]\n"
                                                  "template: Hello {{ name }}\n")
    with pytest.raises(PromptConflict, match=r"support/v1\.yaml differs from support@1 in the store \(message\)"):
        await import_prompts(engine, read_folder(tmp_path), source="prompts")


async def test_version_files_must_continue_the_numbering(engine: AsyncEngine, tmp_path: Path) -> None:
    await fill(engine)
    folder = tmp_path / "support"
    folder.mkdir()
    (folder / "v5.yaml").write_text("template: skipped ahead\n")
    with pytest.raises(PromptConflict, match=r"support/v5\.yaml: the next version of support is 3; .*name it "
                                             r"v3\.yaml"):
        await import_prompts(engine, read_folder(tmp_path), source="prompts")
    (folder / "v5.yaml").unlink()
    (folder / "v3.yaml").write_text("template: '{{ undeclared }}'\n")
    with pytest.raises(PromptError, match=r"^support/v3\.yaml: template uses undeclared variable 'undeclared'"):
        await import_prompts(engine, read_folder(tmp_path), source="prompts")
    (folder / "v3.yaml").write_text("template: fine\n")
    (folder / "labels.yaml").write_text("production: 4\n")
    with pytest.raises(PromptNotFound, match=r"support/labels\.yaml: production: support has no version 4"):
        await import_prompts(engine, read_folder(tmp_path), source="prompts")
    assert len(await list_versions(engine, "support")) == 2


@pytest.mark.parametrize(("name", "text", "message"), [
    ("v1.yaml", "template: [unclosed\n", r"support/v1\.yaml: not valid YAML"),
    ("v1.yaml", "- just a list\n", r"support/v1\.yaml: document: Input should be a valid dictionary"),
    ("v1.yaml", "template: hi\nversion: 1\n", r"support/v1\.yaml: version: Extra inputs are not permitted"),
    ("version1.yaml", "template: hi\n", r"support/version1\.yaml: not a version file; name versions v1\.yaml"),
    ("v1.yml", "template: hi\n", r"support/v1\.yml: not a version file"),
    ("labels.yaml", "latest: 1\n", r"support/labels\.yaml: 'latest' is not a label you can set"),
])
def test_bad_files_are_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / "support").mkdir()
    (tmp_path / "support" / name).write_text(text)
    with pytest.raises(PromptError, match=message):
        read_folder(tmp_path)


def test_a_folder_reads_only_what_it_is_asked_and_ignores_other_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "v1.yaml").write_text("template: hi\n")
    (tmp_path / "a" / "README.md").write_text("notes")
    (tmp_path / ".git").mkdir()
    assert [bundle.name for bundle in read_folder(tmp_path)] == ["a", "b"]
    assert [bundle.name for bundle in read_folder(tmp_path, ["b"])] == ["b"]
    with pytest.raises(PromptError, match=r"no folder for c \(found: a, b\)"):
        read_folder(tmp_path, ["c"])
    with pytest.raises(PromptError, match="no such folder"):
        read_folder(tmp_path / "missing")
    (tmp_path / "bad name").mkdir()
    with pytest.raises(PromptError, match="the folder's name is the prompt's name: bad prompt name"):
        read_folder(tmp_path)
