"""`listener check`: a summary for a good setup, `file:line: field: what` for each problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.cli import app
from listener.config import ConfigError, load_config
from listener.config.lines import KeyLines
from tests.support.configs import QUERIES, ROOT, write_setup

runner = CliRunner()


def check(config: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["check", "--config", str(config)])
    return result.exit_code, result.output


def test_the_example_config_checks_out() -> None:
    code, output = check(ROOT / "config.example.toml")
    assert code == 0, output
    assert "organisations: 2, branches: 8" in output
    assert "eemland-brand: brand" in output
    assert "webcare-slack: slack (inactive" in output


def test_a_good_setup_prints_a_summary(tmp_path: Path) -> None:
    code, output = check(write_setup(tmp_path))
    assert code == 0, output
    assert "organisations: 1, branches: 2" in output
    assert "searches: 2" in output
    assert "receivers: 1, routes: 1" in output


def queries_with(old: str, new: str) -> str:
    assert old in QUERIES
    return QUERIES.replace(old, new, 1)


CASES = [
    pytest.param(
        queries_with('kind = "brand"', 'kind = "brand'),
        "queries/eemland.toml:14: TOML syntax error",
        id="toml-syntax-error",
    ),
    pytest.param(
        queries_with('interval = "5m"', 'interval = "5m"\nfuzy = 80'),
        "queries/eemland.toml:16: searches[eemland-brand].fuzy: unknown key",
        id="unknown-key",
    ),
    pytest.param(
        queries_with("lat = 52.1325, ", ""),
        "queries/eemland.toml:8: organisations[eemland].branches[leusden].lat: "
        "required field missing",
        id="missing-branch-coordinate",
    ),
    pytest.param(
        queries_with('interval = "5m"', 'interval = "5 minutes"'),
        "queries/eemland.toml:15: searches[eemland-brand].interval: bad duration '5 minutes'",
        id="bad-interval",
    ),
    pytest.param(
        queries_with('org = "eemland"', 'org = "eemlnd"'),
        "queries/eemland.toml:13: searches[eemland-brand].org: unknown organisation 'eemlnd'",
        id="unknown-organisation",
    ),
    pytest.param(
        queries_with("radius_km = 5", "radius_km = -5"),
        "queries/eemland.toml:7: organisations[eemland].branches[amersfoort].radius_km: "
        "Input should be greater than 0",
        id="negative-radius",
    ),
    pytest.param(
        queries_with('terms = ["de bieb", "bibliotheek"]', "terms = []"),
        "queries/eemland.toml:17: searches[de-bieb]: a local search needs terms",
        id="local-search-without-terms",
    ),
]


@pytest.mark.parametrize(("queries", "expected"), CASES)
def test_each_problem_names_file_line_and_field(
    tmp_path: Path, queries: str, expected: str
) -> None:
    code, output = check(write_setup(tmp_path, queries=queries))
    assert code == 1
    assert str(tmp_path / expected) in output.replace("\n", " ") or (
        str(tmp_path) + "/" + expected in output
    ), output


def test_a_bad_key_in_the_main_config_is_named(tmp_path: Path) -> None:
    config = write_setup(tmp_path, extra_main='[outbox]\nlease = "soon"\n')
    code, output = check(config)
    assert code == 1
    assert f"{config}:9: outbox.lease: bad duration 'soon'" in output


def test_an_unknown_receiver_in_a_route_is_named(tmp_path: Path) -> None:
    code, output = check(write_setup(tmp_path, route_receivers='"console", "slak"'))
    assert code == 1
    assert (
        f"{tmp_path}/alerts/routes.toml:7: routes[0].receivers: unknown receiver 'slak'" in output
    )


def test_every_problem_is_listed_not_just_the_first(tmp_path: Path) -> None:
    queries = queries_with('interval = "5m"', 'interval = "5 minutes"\nfuzy = 80')
    code, output = check(write_setup(tmp_path, queries=queries, route_receivers='"nobody"'))
    assert code == 1
    assert "3 problem(s)" in output


def test_csv_branches_are_imported_and_their_errors_name_line_and_column(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    csv_file = tmp_path / "queries" / "branches.csv"
    csv_file.write_text(
        "org_id,org_name,org_aliases,branch_id,branch_name,street,town,lat,lon,radius_km\n"
        "coda,CODA Apeldoorn,CODA Apeldoorn|Bieb CODA,centrale,Centrale,,Apeldoorn,52.2,5.95,4\n"
        "coda,CODA Apeldoorn,,ugchelen,Ugchelen,,Ugchelen,,5.94,1.5\n",
        encoding="utf-8",
    )
    (tmp_path / "queries" / "coda.toml").write_text('import_csv = ["branches.csv"]\n')
    code, output = check(config)
    assert code == 1
    assert f"{csv_file}:3: lat: required field missing" in output

    csv_file.write_text(csv_file.read_text().replace(",,5.94,", ",52.18,5.94,"))
    loaded = load_config(config)
    coda = loaded.organisations["coda"]
    assert [b.id for b in coda.branches] == ["centrale", "ugchelen"]
    assert coda.aliases == ["CODA Apeldoorn", "Bieb CODA"]


def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    config.write_text(config.read_text().replace('queries_dir = "queries"', 'queries_dir = "q"'))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert f"{config}: queries_dir: folder {tmp_path}/q does not exist" in str(caught.value)


def test_key_lines_follow_nested_arrays_of_tables() -> None:
    text = (
        "[[organisations]]\n"  # 1
        'id = "a"\n'  # 2
        "[[organisations.branches]]\n"  # 3
        'id = "x"\n'  # 4
        "[[organisations]]\n"  # 5
        'id = "b"\n'  # 6
        "[[organisations.branches]]\n"  # 7
        'id = "y"\n'  # 8
        "lat = 1\n"  # 9
    )
    lines = KeyLines(text)
    assert lines.line_of(("organisations", 1, "branches", 0, "lat")) == 9
    assert lines.line_of(("organisations", 0, "branches", 0, "id")) == 4
    assert lines.line_of(("organisations", 1, "branches", 0, "radius_km")) == 7


def test_check_warns_about_a_missing_replay_file(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    (tmp_path / "posts.jsonl").unlink()
    code, output = check(config)
    assert code == 0
    assert f"warning: replay file {tmp_path}/posts.jsonl does not exist (yet)" in output


def test_a_branch_area_that_does_not_load_is_named(tmp_path: Path) -> None:
    queries = queries_with("radius_km = 2.5 }", 'radius_km = 2.5, area = "gemeente:Leusdn" }')
    code, output = check(write_setup(tmp_path, queries=queries))
    assert code == 1
    assert (
        f"{tmp_path}/queries/eemland.toml:8: organisations[eemland].branches[leusden].area: "
        "unknown municipality 'Leusdn'"
    ) in output


def test_a_branch_may_serve_a_whole_municipality(tmp_path: Path) -> None:
    queries = queries_with("radius_km = 2.5 }", 'radius_km = 2.5, area = "gemeente:Leusden" }')
    code, output = check(write_setup(tmp_path, queries=queries))
    assert code == 0, output
