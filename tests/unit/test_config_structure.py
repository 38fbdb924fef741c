"""How the config module is built: pydantic's own metadata, no cycles, pluggable masking."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from pydantic import BaseModel, SecretStr

from watchdog import config

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-or-v1-0123456789abcdef-do-not-print"


def test_every_key_is_described_with_pydantic_metadata() -> None:
    models: list[type[BaseModel]] = [*config._SECTIONS.values(), config.NotifyTarget]
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"
            assert info.json_schema_extra is None, f"{model.__name__}.{name}"
            if info.default is None:  # shown commented out with its example
                assert info.examples, f"{model.__name__}.{name}"


def test_the_sample_shows_each_description_and_example() -> None:
    example = config.render_example()
    for section, model in config._SECTIONS.items():
        for name, info in model.model_fields.items():
            assert f"# {info.description}\n" in example, f"{section}.{name}"
    assert '# api_key_file = "/etc/budget-watchdog/openrouter_api_key"\n' in example
    assert "# daily_limit = 20.0\n" in example


def test_the_config_module_imports_nothing_of_watchdog_but_the_core() -> None:
    """notify imports config for its types; config importing notify would be a cycle.
    watchdog.db (the state URL's masking) is a leaf: it imports nothing of ours."""
    tree = ast.parse((ROOT / "watchdog" / "config.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    ours = {name for name in imported if name.split(".")[0] == "watchdog"}
    assert ours and all(name.startswith("watchdog.core.") for name in ours - {"watchdog"})
    # `from watchdog import db`, and nothing else of the package's top level
    assert all(
        alias.name == "db"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "watchdog"
        for alias in node.names
    )
    db_tree = ast.parse((ROOT / "watchdog" / "db.py").read_text())
    assert not any(
        (node.module or "").split(".")[0] == "watchdog"
        for node in ast.walk(db_tree)
        if isinstance(node, ast.ImportFrom)
    )


def test_effective_urls_show_only_their_scheme_by_default() -> None:
    settings = config.Settings(
        notify={"targets": [{"url": f"json://user:{SECRET}@host/x"}, {"url": "garbage"}]}
    )
    text = config.render_effective(settings)
    assert 'url = "json://********"' in text
    assert 'url = "********"' in text
    assert SECRET not in text
    tomllib.loads(text)


def test_effective_urls_are_shown_by_the_given_describer() -> None:
    settings = config.Settings(notify={"targets": [{"url": f"json://u:{SECRET}@h/x"}]})
    seen: list[str] = []

    def describe(url: str) -> str:
        seen.append(url)
        return "json://u:****@h/x"

    text = config.render_effective(settings, describe)
    assert seen == [f"json://u:{SECRET}@h/x"]
    assert 'url = "json://u:****@h/x"' in text


def test_loading_twice_in_a_row_keeps_files_apart(tmp_path: Path) -> None:
    """Each load() passes its own file to Settings(); nothing is left behind for the next."""
    first = tmp_path / "first.toml"
    first.write_text("[budget]\ndaily_limit = 5\n")
    assert config.load(first, require_key=False).settings.budget.daily_limit == 5.0
    assert config.load(None, require_key=False).settings.budget.daily_limit is None
    assert config.Settings().budget.daily_limit is None


def test_secrets_include_keys_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(SECRET + "\n")
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[provider]\napi_key_file = "{tmp_path}/key"\n')
    settings = config.load(path).settings
    assert settings.secrets() == [SECRET]
    assert isinstance(settings.provider.api_key, SecretStr)


def test_loaded_notes_default_to_empty(tmp_path: Path) -> None:
    loaded = config.Loaded(config.Settings(), None, [])
    assert loaded.notes == []
