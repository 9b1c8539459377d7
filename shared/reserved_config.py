"""Config names refused because they change how a program starts, not what the app does.

A dynamic loader, a shell or an interpreter reads these before any of the app's code runs and
loads or runs what they name; so whoever may set config (a `deploy:<env>` token) could run code
of their choosing as the app's user without changing the app. They are refused when config is
set (422), and dropped from a release's environment should an older config version hold one.
Search paths (`PATH`, `PYTHONPATH`, `NODE_PATH`, `PERL5LIB`, `RUBYLIB`, `HOME`) stay allowed:
apps set them, and they only find files already on the host. docs/api.md lists the names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

_LOADER = "the dynamic loader reads it and can load a library it names into every process"
_SHELL = "the shell reads it at start-up and can run commands it names"
_INTERPRETER = "the interpreter reads it at start-up and can load or run code it names"
_PROGRAM = "it names a program or module that is run without the app asking for it"
_GIT = "any git the app runs would run a program it names, or read a config that names one"
_OPENSSL = "OpenSSL reads it and can load a shared library it names"

# Names refused exactly (config keys are case-sensitive, as programs read them).
STARTUP_NAMES: Final[Mapping[str, str]] = {
    "GCONV_PATH": _LOADER,
    "GLIBC_TUNABLES": _LOADER,
    "BASH_ENV": _SHELL,
    "SHELLOPTS": _SHELL,
    "BASHOPTS": _SHELL,
    "PS4": _SHELL,
    "PYTHONSTARTUP": _INTERPRETER,
    "PYTHONWARNINGS": _INTERPRETER,
    "PYTHONHOME": _INTERPRETER,
    "PYTHONINSPECT": _INTERPRETER,
    "PYTHONBREAKPOINT": _INTERPRETER,
    "PYTHONUSERBASE": _INTERPRETER,
    "PYTHONPLATLIBDIR": _INTERPRETER,
    "PYTHONPYCACHEPREFIX": _INTERPRETER,
    "PYTHONEXECUTABLE": _INTERPRETER,
    "PERL5OPT": _INTERPRETER,
    "PERL5DB": _INTERPRETER,
    "RUBYOPT": _INTERPRETER,
    "NODE_OPTIONS": _INTERPRETER,
    "JAVA_TOOL_OPTIONS": _INTERPRETER,
    "_JAVA_OPTIONS": _INTERPRETER,
    "JDK_JAVA_OPTIONS": _INTERPRETER,
    "DOTNET_STARTUP_HOOKS": _INTERPRETER,
    "BROWSER": _PROGRAM,
    "OPENSSL_CONF": _OPENSSL,
    "OPENSSL_ENGINES": _OPENSSL,
    "OPENSSL_MODULES": _OPENSSL,
    # The git variables that make git run a program or read another config; the rest
    # (`GIT_SHA`, `GIT_COMMIT`, …) are an app's own and stay allowed.
    "GIT_ASKPASS": _GIT,
    "GIT_DIR": _GIT,
    "GIT_EDITOR": _GIT,
    "GIT_EXEC_PATH": _GIT,
    "GIT_EXTERNAL_DIFF": _GIT,
    "GIT_PAGER": _GIT,
    "GIT_PROXY_COMMAND": _GIT,
    "GIT_SEQUENCE_EDITOR": _GIT,
    "GIT_TEMPLATE_DIR": _GIT,
}
# Families refused by their prefix.
STARTUP_PREFIXES: Final[Mapping[str, str]] = {
    "LD_": _LOADER,
    "DYLD_": _LOADER,
    "BASH_FUNC_": _SHELL,
    "CORECLR_PROFILER": _INTERPRETER,
    "GIT_CONFIG": _GIT,  # GIT_CONFIG, _GLOBAL, _SYSTEM, _COUNT, _KEY_n, _VALUE_n, _PARAMETERS
    "GIT_SSH": _GIT,  # GIT_SSH, GIT_SSH_COMMAND, GIT_SSH_VARIANT
}


def startup_reason(key: str) -> str | None:
    """Why config may not set `key`, or None if it may."""
    if key in STARTUP_NAMES:
        return STARTUP_NAMES[key]
    return next((why for prefix, why in STARTUP_PREFIXES.items() if key.startswith(prefix)), None)


def without_startup_variables(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the names config may not set (an older config version may hold some)."""
    return {key: value for key, value in env.items() if startup_reason(key) is None}
