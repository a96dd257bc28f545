"""Configuration: YAML in, validated plain data out.

Every problem in a file is reported at once, one line each, in the form
``FILE:LINE:COL: WHERE: field 'F': what is wrong; what would be right``. Secrets are accepted
only by reference (``${ENV_VAR}`` or a ``*_file`` path) and are resolved at load time into
:class:`Secret` values that never print themselves. Kind-specific options are declared by
each probe (its ``options_type``) and read with the same :class:`Fields` reader, so the
loader never branches on a kind.

The modules, bottom up: :mod:`.values` (how values are written), :mod:`.yamldoc` (YAML read
safely, and where each value is), :mod:`.fields` (the field reader and its problems),
:mod:`.model` (what a loaded config is); then what reads a config's sections:
:mod:`.windows`, :mod:`.targets`, :mod:`.otlp`; and :mod:`.loader` (``load``,
``load_text``) on top, the one module that imports ``discovery``. Probes depend only on the
field reader and the model, which this package's ``__init__`` gathers; import the loader
from :mod:`.loader`.
"""

from .fields import ConfigError, Fields, LateValues, Reporter, Secret
from .model import (
    AS_WRITTEN,
    Config,
    Defaults,
    KindOptions,
    KindSpec,
    OtlpSettings,
    Placement,
    Target,
    attributes_of,
)
from .values import format_seconds, parse_duration, split_host_port

__all__ = [
    "AS_WRITTEN",
    "Config",
    "ConfigError",
    "Defaults",
    "Fields",
    "KindOptions",
    "KindSpec",
    "LateValues",
    "OtlpSettings",
    "Placement",
    "Reporter",
    "Secret",
    "Target",
    "attributes_of",
    "format_seconds",
    "parse_duration",
    "split_host_port",
]
