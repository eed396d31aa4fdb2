"""Load and validate the pipeline configuration outside Snakemake (CLI, tests)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config" / "config.yaml"
PAPER_CONFIG = REPO_ROOT / "config" / "paper.yaml"  # the method's defaults


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


def _key_path(error) -> str:
    parts = ["config", *[str(p) for p in error.absolute_path]]
    return ".".join(parts)


def _filling_validator(schema_doc: dict[str, Any], partial: bool = False):
    """A Draft 2020-12 validator that also sets every absent property with a schema ``default:``.

    The same as ``snakemake.utils.validate(..., set_default=True)`` does to the workflow's
    config (python-jsonschema FAQ, "Why doesn't my schema's default property set the
    default on my instance?"): defaults live in the schema only, and the code reads
    ``config[key]``. A default inside an object the config leaves out is not set.
    """
    import jsonschema

    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    def nothing_required(validator, required, instance, schema):
        yield from ()

    extra = {"required": nothing_required} if partial else {}
    return jsonschema.validators.extend(base, {"properties": set_defaults, **extra})(schema_doc)


def validate_config(config: dict[str, Any], schema: str | os.PathLike = SCHEMA, *, partial: bool = False) -> None:
    """Validate ``config`` against the JSON schema and fill in the schema's defaults (in place);
    raise ConfigError naming the first bad key.

    ``partial``: ``config`` holds only some sections (what a rule passes a job in ``params``);
    required keys are not asked for, everything present is checked and completed.
    """
    with open(schema) as fh:
        schema_doc = yaml.safe_load(fh)
    validator = _filling_validator(schema_doc, partial)  # what snakemake.utils.validate does
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_key_path(e)}: {e.message}" for e in errors[:10]]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (inputs untouched)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: str | os.PathLike = DEFAULT_CONFIG, overrides: dict | None = None) -> dict[str, Any]:
    """Read a YAML config, apply ``overrides``, validate it and fill in the schema's defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with open(path) as fh:
        cfg = yaml.safe_load(fh) or {}
    if overrides:
        cfg = deep_merge(cfg, overrides)
    validate_config(cfg)
    return cfg


def write_run_config(config: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the configuration a run resolved to as YAML (atomically): the provenance of its results.

    A paper run (``--configfile config/paper.yaml``) records paper.yaml with the schema's defaults
    filled in (and its site files merged over it), nothing of ``config/config.yaml``.
    """
    from cinefm.atomic import write_text

    write_text(path, yaml.safe_dump(_plain(config), sort_keys=False))


def _plain(value: Any) -> Any:
    """Nested mappings/sequences as plain dicts/lists (Snakemake hands its config in its own types)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": value}`` for every leaf of a nested mapping (lists are leaves, ``{}`` has none)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):  # an empty mapping has no leaves
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


ABSENT = object()  # a key one of two configurations does not set


def differences(config: dict[str, Any], reference: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, value in config, value in reference)`` for every leaf where the two differ, by key.

    A key that one side does not set has :data:`ABSENT` on that side.
    """
    ours, theirs = flatten(config), flatten(reference)
    return [(key, ours.get(key, ABSENT), theirs.get(key, ABSENT)) for key in sorted(ours.keys() | theirs.keys())
            if ours.get(key, ABSENT) != theirs.get(key, ABSENT)]
