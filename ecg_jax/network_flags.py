"""A network's constructor options on the command line, and a config file's options under another network.

    ecg-jax train --config unet:smoke --config.model=my_net.py:MyNet --config.model_kwargs.features=32
    ecg-jax train --config final --config.model=/abs/my_net.py:MyNet --workdir W

`--config.model_kwargs.X=V`: ml_collections defines an override flag only for a field the config
file already has, and a network config's `model_kwargs` holds only the options its own network is
given (often none), so any other option was refused as an unknown field. `accept_model_options`
gives the config flag a field for each `--config.model_kwargs.X` of the command line before the
overrides are applied, typed `object` so the value is read as a Python literal (3, 0.5, True,
(9, 9), or else the string). Which options exist is the network's business: `create_model` checks
each against the module's fields and refuses an unknown one in one line before anything is written.

`--config.model=OTHER`: the options a config file sets belong to the network it names (configs/
final.py gives the final U-Net kernels (17, 17, 7, 7)). `adopt_model_options` keeps those OTHER
takes as well, leaves out those it has no field for (saying so on stderr), and keeps every option
given on the command line, so a misspelt one is still refused.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Mapping

import ml_collections

OPTIONS_FIELD = "model_kwargs"


def command_line_options(argv: list[str], flag_name: str = "config") -> list[str]:
    """The option names X of every `--<flag_name>.model_kwargs.X[=V]` in `argv` (order kept, once each)."""
    names: list[str] = []
    for arg in argv:
        m = re.match(rf"^--?(?:no)?{re.escape(flag_name)}\.{OPTIONS_FIELD}\.([A-Za-z_]\w*)(=|$)", arg)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def add_option_fields(config: Any, names: list[str]) -> Any:
    """`config` with an `object`-typed field under model_kwargs for each of `names` it lacks (its lock kept)."""
    if not isinstance(config, ml_collections.ConfigDict) or OPTIONS_FIELD not in config:
        return config
    options = config[OPTIONS_FIELD]
    missing = [n for n in names if n not in options]
    if missing:
        with config.unlocked():
            for name in missing:
                # None until the override flag sets it; `object` makes ml_collections parse a literal
                options[name] = ml_collections.FieldReference(None, field_type=object)
    return config


class _WithOptionFields:
    """The config flag's parser, adding the command line's option fields to the config it loads."""

    def __init__(self, parser, flag_name: str):
        self._parser = parser
        self._flag_name = flag_name

    def parse(self, argument):
        from absl import flags

        config = self._parser.parse(argument)
        argv = flags.FLAGS.read_flags_from_files(sys.argv, force_gnu=False)
        return add_option_fields(config, command_line_options(argv, self._flag_name))

    def __getattr__(self, name):   # flag_type, syntactic_help, ...: the wrapped parser's
        return getattr(self._parser, name)


def accept_model_options(holder) -> None:
    """Let `--<config>.model_kwargs.X=V` set any option X of the network (see the module docstring).

    Called right after the command defines its config flag (ecg_jax.cli.define_config_file): a flag
    with a default config has parsed it already, so its fields are added here too."""
    from absl import flags

    flag = flags.FLAGS[holder.name]
    flag.parser = _WithOptionFields(flag.parser, flag.name)
    names = command_line_options(list(sys.argv), flag.name)
    if names and flag.value is not None:
        add_option_fields(flag.value, names)


def adopt_model_options(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
                        ) -> tuple[ml_collections.ConfigDict, str | None]:
    """(config, note): with `model` among the command line's `overrides` (the config flag's
    override_values), the config file's options that network has no field for are left out and
    `note` says which; None and the config unchanged otherwise."""
    if "model" not in overrides or OPTIONS_FIELD not in config:
        return config, None
    from ecg_jax.models import check_model, create_model, display_name_of, model_options

    given = {k.split(".", 1)[1] for k in overrides if k.startswith(OPTIONS_FIELD + ".")}
    accepted = model_options(config.model)   # loads the network: a bad spec stops here, in one line
    options = config[OPTIONS_FIELD].to_dict()
    dropped = {k: v for k, v in options.items() if k not in given and k not in accepted}
    if not dropped:
        return config, None
    # the network must build with the options kept and meet the contract before the note is shown, so an
    # unknown option or a broken network is the command's one line
    model = create_model(config.model, **{k: v for k, v in options.items() if k not in dropped})
    if "data" in config and "window" in config.data:
        check_model(config.model, model, int(config.data.window))
    plain = config.to_dict()
    plain[OPTIONS_FIELD] = {k: v for k, v in options.items() if k not in dropped}
    shown = ", ".join(f"{k}={v!r}" for k, v in dropped.items())
    return ml_collections.ConfigDict(plain), (
        f"note: left out the config file's model_kwargs {shown}: they are its own network's options and "
        f"{display_name_of(config.model)} has no such field (set its own with --config.model_kwargs.NAME=VALUE)")
