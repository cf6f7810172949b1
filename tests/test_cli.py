"""The command line: classify, try, and every command and option documented in the README."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from listener.cli import app
from tests.support.configs import ROOT
from tests.support.schemas import decision_schema

runner = CliRunner()
CONFIG = str(ROOT / "config.example.toml")
SCHEMAS = ROOT.parent / "shared" / "schemas"
DEMO = ROOT / "demo" / "posts.jsonl"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_classify_prints_one_schema_valid_decision_per_post() -> None:
    code, output = invoke("classify", "--config", CONFIG, "--input", str(DEMO), "--json")
    assert code == 0, output
    decisions = [json.loads(line) for line in output.splitlines()]
    posts = [json.loads(line) for line in DEMO.read_text().splitlines()]
    assert [d["id"] for d in decisions] == [p["id"] for p in posts]
    schema = decision_schema()
    for decision in decisions:
        jsonschema.validate(decision, schema)
    by_id = {d["id"]: d for d in decisions}
    assert (by_id["bluesky:demo-1"]["org"], by_id["bluesky:demo-1"]["branch"]) == (
        "eemland",
        "leusden",
    )
    assert by_id["bluesky:demo-3"]["org"] is None  # a Steam library
    assert by_id["bluesky:demo-3"]["urgency"] == "none"


def test_classify_writes_nothing_to_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTENER_DATABASE", f"sqlite:///{tmp_path / 'never.db'}")
    code, _ = invoke("classify", "--config", CONFIG, "--input", str(DEMO))
    assert code == 0
    assert not (tmp_path / "never.db").exists()
    assert not list(tmp_path.iterdir())


def test_classify_reports_bad_lines_and_decides_the_rest(tmp_path: Path) -> None:
    posts = tmp_path / "posts.jsonl"
    good = DEMO.read_text().splitlines()[0]
    posts.write_text(f"{good}\nnot json\n" + '{"id": "x", "source": "rss"}\n')
    result = runner.invoke(app, ["classify", "-c", CONFIG, "-i", str(posts), "--json"])
    assert result.exit_code == 1
    assert f"{posts}:2: skipped" in result.output
    assert f"{posts}:3: skipped: text: required field missing" in result.output
    assert '"id": "bluesky:demo-1"' in result.output


def test_try_explains_the_evidence() -> None:
    code, output = invoke("try", "--config", CONFIG, "de bieb in Leusden is wéér dicht 😡")
    assert code == 0
    assert "about: eemland / leusden via search de-bieb" in output
    assert "text names Leusden (exact)" in output
    assert "urgency breakdown:" in output
    assert re.search(r"outage +\+45  'dicht'", output)
    assert re.search(r"total +60  high \(critical ≥ 70, high ≥ 45, normal ≥ 20\)", output)


def test_try_shows_the_breakdown_also_without_an_organisation() -> None:
    code, output = invoke("try", "--config", CONFIG, "Brand in het buurthuis!")
    assert code == 0, output
    assert "urgency breakdown (if it were about an organisation):" in output
    assert re.search(r"safety +\+70  'brand'", output)


def test_try_uses_the_profile_location_and_coordinates() -> None:
    code, output = invoke("try", "-c", CONFIG, "Morgen naar de bieb", "--location", "Leusden")
    assert code == 0, output
    assert "about: eemland / leusden" in output
    code, output = invoke(
        "try", "-c", CONFIG, "De bibliotheek is dicht", "--lat", "52.1552", "--lon", "5.3869"
    )
    assert code == 0, output
    assert "about: eemland / amersfoort" in output
    assert "post coordinates" in output


def test_try_shows_near_misses_and_rejections() -> None:
    code, output = invoke("try", "-c", CONFIG, "Bibliotheek Eemlnad is dicht")
    assert code == 0, output
    assert "about: no organisation" in output
    assert (
        "search eemland-brand: 'bibliotheek eemlnad' is like name 'Bibliotheek Eemland' "
        "(fuzzy 86, needs 88)" in output
    )
    code, output = invoke(
        "try", "-c", CONFIG, "mijn Steam-bibliotheek is leeg", "--location", "Leusden"
    )
    assert code == 0, output
    assert "another sense of the word ('Steam-bibliotheek' is a kind of bibliotheek)" in output


def test_try_needs_both_coordinates() -> None:
    code, output = invoke("try", "-c", CONFIG, "x", "--lat", "52.1")
    assert code == 2
    assert "give both --lat and --lon" in output


def test_every_command_and_option_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup) and command.commands, "the CLI has commands"

    def leaves(prefix: str, group: TyperGroup) -> Iterator[tuple[str, Any]]:
        """Every command, with its sub-commands ('silence add') in place of their group."""
        for name, sub in group.commands.items():
            if isinstance(sub, TyperGroup):
                assert sub.commands, f"group {prefix}{name} has no commands"
                yield from leaves(f"{prefix}{name} ", sub)
            else:
                yield f"{prefix}{name}", sub

    names = [name for name, _ in leaves("", command)]
    assert "silence add" in names, "sub-commands are checked too"
    for name, sub in leaves("", command):
        assert f"### `listener {name}" in readme, f"command {name} has no README section"
        section = readme.split(f"### `listener {name}", 1)[1].split("\n### ", 1)[0]
        heading = section.splitlines()[0]
        for param in sub.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in heading or opt in section, f"{name} {opt} not in README"
    assert re.search(r"```sh\nmake run .*\nmake test", readme), "the first screen's two commands"


def test_run_says_plainly_when_the_database_cannot_be_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTENER_DATABASE", f"sqlite:///{tmp_path}/no/such/dir/listener.db")
    code, output = invoke("run", "--once", "--config", CONFIG)
    assert code == 1
    assert "cannot open the database sqlite:///" in output
    assert "unable to open database file" in output
    assert "Traceback" not in output


def test_a_database_password_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTENER_DATABASE", "postgresql://listener:s3cret@127.0.0.1:1/db")
    code, output = invoke("run", "--once", "--config", CONFIG)
    assert code == 1
    assert "s3cret" not in output
    assert "listener:***@127.0.0.1" in output


def test_sources_lists_what_runs_what_cannot_and_the_health(tmp_path: Path) -> None:
    from tests.support.configs import write_setup

    extra = '[sources.x]\nbearer_env = "LISTENER_TEST_NO_SUCH_TOKEN"\n'
    config = write_setup(tmp_path, extra_main=extra)
    result = runner.invoke(app, ["sources", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "replay:posts.jsonl" in result.output
    assert "x: not running" in result.output and "LISTENER_TEST_NO_SUCH_TOKEN" in result.output
    assert "mastodon: not configured" in result.output

    from listener.config import load_config
    from listener.daemon import Daemon
    from listener.sources import SourceError
    from tests.test_daemon import ScriptedSource

    daemon = Daemon.from_config(load_config(config), env={})
    daemon.poll(ScriptedSource("replay:posts.jsonl", [SourceError("disk on fire")]))
    daemon.store.close()
    result = runner.invoke(app, ["sources", "--config", str(config)])
    assert "failing since" in result.output and "disk on fire" in result.output


def test_every_toml_example_in_the_readme_is_valid_toml() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        tomllib.loads(block)  # raises with the line and column of the mistake
