"""The YAML config file settings are read from (`--config` or MIRBENCH_CONFIG): read once,
checked to be a mapping, its node tree kept so that an error names its line."""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder.config.yaml_lines import line_of, read_yaml
from builder.core.errors import InputError

CONFIG_FILE_ENV = "MIRBENCH_CONFIG"


@dataclass(frozen=True)
class ConfigFile:
    """A YAML config file, read and checked to be a mapping; its node tree locates errors."""

    path: Path
    data: dict[str, Any]
    node: yaml.Node | None

    @classmethod
    def read(cls, path: Path) -> ConfigFile:
        if not path.is_file():
            raise InputError("config file not found", path=path)
        data, node = read_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InputError(
                f"a config file is a mapping of settings (key: value lines), not a {type(data).__name__}",
                path=path,
                line=line_of(node, ()),
            )
        return cls(path, data, node)


_config_file: ContextVar[ConfigFile | None] = ContextVar("mirbench_config_file", default=None)


def using_config_file(config: ConfigFile | None) -> Token[ConfigFile | None]:
    """Read settings from `config` (instead of MIRBENCH_CONFIG's) until the token is reset."""
    return _config_file.set(config)


def active_config_file() -> ConfigFile | None:
    """The config file settings are being read from: the one in use, else MIRBENCH_CONFIG's."""
    explicit = _config_file.get()
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_FILE_ENV)
    return ConfigFile.read(Path(from_env)) if from_env else None
