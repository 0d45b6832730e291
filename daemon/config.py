"""Loading the configuration: daemon.toml, overridden by environment variables, checked
all at once.

Loading collects every problem (unknown key with a "did you mean", wrong type, out of
range, missing secret) and raises one `ConfigError` listing them all, each naming the
key, the bad value and what is allowed, as Mopidy does.

Environment: `CAMPAIGND_` + the dotted key in upper case with `__` for each dot, e.g.
`CAMPAIGND_SERVER__PORT=9000` or `CAMPAIGND_WEBHOOKS__CLOUD__APP_SECRET=...`.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.config import (
    ENV_PREFIX,
    KEYS,
    NOT_KEYS,
    SOURCE_SECRET,
    SOURCES,
    Config,
    ConfigError,
    Key,
    env_name,
    is_loopback,
)
from domain.alerts import parse_rules
from domain.cluster import config_problems as cluster_problems


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and not any(k == dotted for k in KEYS):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name not in NOT_KEYS:
            out[name[len(ENV_PREFIX):].lower().replace("__", ".")] = value
    return out


def _coerce_env(key: Key, raw: str) -> Any:
    """Environment values are strings: read them as the key's type wants."""
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    if bool in types:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return raw
    if list in types or dict in types:
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            return raw
    for t in types:
        if t in (int, float):
            try:
                return t(raw)
            except ValueError:
                continue
    return raw


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "an array", dict: "a table"}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _allowed(key: Key) -> str:
    """What a key accepts beyond its type, in words."""
    parts = []
    if key.choices:
        parts.append("one of " + ", ".join(map(repr, key.choices)))
    if key.minimum is not None and key.maximum is not None:
        parts.append(f"from {_num(key.minimum)} to {_num(key.maximum)}")
    elif key.minimum is not None:
        parts.append(f"at least {_num(key.minimum)}")
    elif key.maximum is not None:
        parts.append(f"at most {_num(key.maximum)}")
    return "; ".join(parts)


def _check(name: str, key: Key, value: Any) -> str | None:
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    type_ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not type_ok:
        wanted = ("a number" if set(types) == {int, float}
                  else " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in types))
        extra = _allowed(key)
        return f"{name} = {value!r}: must be {wanted}" + (f" ({extra})" if extra else "")
    if key.choices is not None and value not in key.choices:
        return f"{name} = {value!r}: must be one of {', '.join(map(repr, key.choices))}"
    if (key.minimum is not None and value < key.minimum) or (
            key.maximum is not None and value > key.maximum):
        return f"{name} = {value!r}: out of range, must be {_allowed(key)}"
    if key.check is not None:
        problem = key.check(value)
        if problem:
            return f"{name}: {problem}"
    return None


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and check the configuration; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            problems.append(f"config file {path}: not found")
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"config file {path}: not valid TOML: {exc}")
    for name in raw:
        if name not in KEYS:
            hint = difflib.get_close_matches(name, KEYS, n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{name}: unknown key{suffix}")
    values = {name: key.default for name, key in KEYS.items()}
    values.update({k: v for k, v in raw.items() if k in KEYS})
    from_env: set[str] = set()
    for name, value in _from_env(environ).items():
        if name not in KEYS:
            hint = difflib.get_close_matches(name, KEYS, n=1)
            suffix = f" (did you mean {env_name(hint[0])}?)" if hint else ""
            problems.append(f"{env_name(name)}: unknown setting{suffix}")
            continue
        values[name] = _coerce_env(KEYS[name], value)
        from_env.add(name)
    if "pusher.allow_public_channels" not in raw and "pusher.allow_public_channels" not in \
            from_env and values["api.tokens"]:
        # With tokens, a public channel would show every workspace to anyone: private
        # channels only, unless the operator says otherwise explicitly.
        values["pusher.allow_public_channels"] = False
    for name, key in KEYS.items():
        problem = _check(name, key, values[name])
        if problem:
            if name in from_env:  # say where the bad value came from
                problem = f"{name} (from {env_name(name)}){problem[len(name):]}"
            problems.append(problem)
        elif float in (key.type if isinstance(key.type, tuple) else (key.type,)):
            values[name] = float(values[name])
    if isinstance(values["alerts"], list):  # each rule's problems, per key
        problems.extend(parse_rules(values["alerts"])[1])
    problems.extend(cluster_problems(values))
    # Checked even when other keys are wrong, so one run names every problem.
    host_ok = isinstance(values["server.host"], str)
    off_loopback = host_ok and not is_loopback(values["server.host"])
    if off_loopback or values["server.require_auth"] is True:
        why = (f"when server.host = {values['server.host']!r} is not a loopback address"
               if off_loopback else "when server.require_auth = true")
        problems.extend(missing_secrets(values, why))
    if problems:
        raise ConfigError(problems)
    base = path.parent.resolve() if path is not None else Path.cwd()
    return Config(values, base, path)


def missing_secrets(values: Mapping[str, Any], why: str) -> list[str]:
    """Every secret a daemon reachable from elsewhere must have, each named."""
    problems = []
    for source in SOURCES:
        secret = SOURCE_SECRET[source]
        if source == "webjs" and values["webhooks.webjs.api_key"]:
            continue  # its API key is a credential too
        if values[f"webhooks.{source}.enabled"] is not False and not values[secret]:
            problems.append(f"{secret}: required {why} (or set webhooks.{source}.enabled ="
                            " false)")
    if values["pusher.app_secret"] == KEYS["pusher.app_secret"].default:
        problems.append(f"pusher.app_secret: the built-in default is public; set your own {why}")
    if not values["api.tokens"] or not isinstance(values["api.tokens"], list):
        problems.append(f"api.tokens: required {why}")
    return problems


def config_for(path_arg: str | None) -> Config:
    """The configuration of a command: --config, else $CAMPAIGND_CONFIG, else
    ./daemon.toml when present, else the built-in defaults."""
    path = Path(path_arg) if path_arg else default_config_path()
    return load_config(path)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    if environ.get("CAMPAIGND_CONFIG"):
        return Path(environ["CAMPAIGND_CONFIG"])
    local = Path("daemon.toml")
    return local if local.exists() else None


def reference_markdown() -> str:
    """docs/configuration.md's key table, generated from KEYS so the two never disagree."""
    lines = ["| key | environment variable | type | default | allowed | meaning |",
             "|---|---|---|---|---|---|"]
    for name, key in KEYS.items():
        types = key.type if isinstance(key.type, tuple) else (key.type,)
        allowed = [_allowed(key)] if _allowed(key) else []
        if key.secret:
            allowed.append("secret (masked)")
        default = ("`[]`" if key.default == [] else "`{}`" if key.default == {}
                   else f"`{key.default!r}`".replace("'", '"'))
        cells = [f"`{name}`", f"`{env_name(name)}`", " or ".join(t.__name__ for t in types),
                 default, "; ".join(allowed), key.help.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
