"""longvid's shared evaluation layer. Imports nothing else of ours; systems are built from config.

Also the one entry point of every Hydra console script (`hydra_main`): the suite's configs ship as the package
`longvid.configs` (the checkout's `configs/`), and plug-in packages add their own config folders."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

CONFIG_PACKAGE = "longvid.configs"     # configs/ of the checkout; package data of the wheel


def config_dir() -> str:
    """The suite's config folder on disk, from a checkout or an installed wheel."""
    from importlib import resources

    d = Path(str(resources.files(CONFIG_PACKAGE)))
    if not (d / "compare.yaml").is_file():
        raise FileNotFoundError(f"the suite's configs are not in {d}: reinstall longvid")
    return str(d)


class PluginError(ValueError):
    """A plug-in package or search-path entry that cannot be used (refused before anything runs)."""


def plugin_config_dir(name: str) -> Path:
    """The config folder of plug-in package `name`: `<package>/configs/`, holding groups such as captioner/, llm/,
    benchmark/, system/. Imports the package (so that its import errors show here)."""
    import importlib

    try:
        mod = importlib.import_module(name)
    except ImportError as e:
        raise PluginError(f"plugins: cannot import {name!r} ({e}); install your package into this environment "
                          f"(e.g. `pip install -e path/to/your/repo`)") from e
    roots = [Path(p) for p in getattr(mod, "__path__", [])]
    if not roots:
        raise PluginError(f"plugins: {name!r} is a module ({mod.__file__}), not a package with a configs/ folder")
    for root in roots:
        if (root / "configs").is_dir():
            return (root / "configs").resolve()
    raise PluginError(f"plugins: package {name!r} has no configs/ folder (looked in {', '.join(map(str, roots))}); "
                      "put your YAML under <package>/configs/<group>/<name>.yaml")


def _search_dir(entry: str) -> Path | None:
    """The folder a Hydra search-path entry names (pkg://a.b, file://path or a path), None if it is not there."""
    from importlib import resources

    if entry.startswith("pkg://"):
        try:
            d = Path(str(resources.files(entry[len("pkg://"):].replace("/", "."))))
        except (ImportError, TypeError, ValueError):
            return None
    else:
        d = Path(entry[len("file://"):] if entry.startswith("file://") else entry)
    return d if d.is_dir() else None


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def with_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """Command-line overrides with `plugins=[pkg, ...]` turned into Hydra search-path entries (file:// of each
    package's configs/, after any `hydra.searchpath` given), every search-path entry checked to exist.
    Returns (new argv, plug-in names). Raises PluginError naming the package or entry."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    plugins: list[str] = []
    searchpath: list[str] = []
    rest, sp_at = [], None
    for a in argv:
        key = a.split("=", 1)[0].lstrip("+~") if "=" in a and not a.startswith("-") else None
        if key not in ("plugins", "hydra.searchpath"):
            rest.append(a)
            continue
        value = parser.parse_override(a).value()
        values = value if isinstance(value, list) else [] if value is None else [value]
        if not all(isinstance(v, str) and v for v in values):
            raise PluginError(f"{key}: expected a list of names, got {a!r}")
        if key == "plugins":
            plugins = list(values)
            rest.append(a)                              # the config records it
        else:
            searchpath, sp_at = list(values), len(rest)
    for entry in searchpath:
        if _search_dir(entry) is None:
            raise PluginError(f"hydra.searchpath: {entry!r} is not a folder (pkg://<importable package> or "
                              "file://<folder>); use plugins=[your_package] for a package's configs/")
    searchpath += [f"file://{plugin_config_dir(p)}" for p in plugins]
    if searchpath:
        arg = "hydra.searchpath=[" + ",".join(_quote(e) for e in searchpath) + "]"
        rest.insert(len(rest) if sp_at is None else sp_at, arg)
    return rest, plugins


def hydra_main(config_name: str, task: Callable) -> None:
    """Run `task(cfg)` as a console script on the suite's configs (`pkg://longvid.configs`, found from a checkout
    or an installed wheel), with `plugins=[my_pkg, ...]` adding each plug-in package's configs/ folder."""
    import functools

    import hydra

    prog = Path(sys.argv[0]).name
    try:
        sys.argv[1:], plugins = with_plugins(sys.argv[1:])
    except PluginError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(2)

    @hydra.main(config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name, version_base="1.3")
    @functools.wraps(task)                # Hydra names the job (and its log) after the task's module
    def _main(cfg) -> None:
        if list(cfg.get("plugins") or []) != plugins:
            print(f"{prog}: plugins={list(cfg.plugins)} is set in a config file; plug-ins extend the config search "
                  "path, so give them on the command line (plugins=[...])", file=sys.stderr)
            sys.exit(2)
        task(cfg)

    _main()
