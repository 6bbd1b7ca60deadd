"""Reading a governed node's tahoe.cfg: Tahoe's own validation plus the governor's sections.

:func:`read_governed_node` is the one judgement of a node directory that both
``tahoe-governor run`` (before anything starts) and ``tahoe-governor check``
make, so whatever ``run`` would refuse, ``check`` refuses first with the same
words (:func:`describe_configuration_error`).

Tahoe-LAFS rejects any section it does not know, so a node directory whose
``tahoe.cfg`` holds ``[backups]`` or ``[bandwidth]`` cannot be read by
``allmydata.client.read_config``.  Here the same file is read by Tahoe's own
reader with a validator that also accepts those two sections (any key in them:
checking their keys and values is the policy layer's job), and Foolscap is
forced for storage so the shaper sees every storage byte.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from types import MappingProxyType
from zoneinfo import ZoneInfo

import attrs
from allmydata import client as tahoe_client
from allmydata import node as tahoe_node
from allmydata.node import OldConfigError, PortAssignmentRequired, PrivacyError
from allmydata.storage_client import MissingPlugin
from allmydata.util import configutil
from allmydata.util.configutil import UnknownConfigError

from tahoe_governor.policy.config import GOVERNOR_SECTIONS, Policy, parse_policy_text
from tahoe_governor.policy.errors import ConfigError

#: (section, key) pairs set to ``true`` whatever the file says: the shaper sits
#: under Foolscap connections only, and Tahoe 1.20 otherwise prefers HTTPS storage.
FORCED_FOOLSCAP = (("client", "force_foolscap"), ("storage", "force_foolscap"))


class GovernedConfigError(Exception):
    """The node directory or its tahoe.cfg cannot run as a governed node."""


#: Errors in the node directory or its tahoe.cfg, reported in one line (as ``tahoe run`` does).
CONFIGURATION_ERRORS = (
    GovernedConfigError,
    UnknownConfigError,
    OldConfigError,
    PortAssignmentRequired,
    PrivacyError,
    MissingPlugin,
    ConfigError,
    ValueError,
)


def describe_configuration_error(error: BaseException) -> str:
    """One line for a configuration error (some of Tahoe's carry no message)."""
    if isinstance(error, PortAssignmentRequired):
        return "tub.port cannot be 0: choose a port in [node] tub.port"
    if isinstance(error, MissingPlugin):
        return f"the configuration requests a plugin that cannot be found: {error.plugin_name}"
    return str(error) or type(error).__name__


def _governor_valid_config() -> configutil.ValidConfiguration:
    """Tahoe's client validator, extended with the governor's sections.

    ``ValidConfiguration.update`` replaces a section's static key list rather
    than merging it, so the extension lists no static sections at all (Tahoe's
    ``[client]`` and ``[storage]`` lists stay whole) and admits the governor's
    sections through the predicates, which ``update`` does combine.
    """
    governor = configutil.ValidConfiguration(
        {},
        lambda section: section in GOVERNOR_SECTIONS,
        lambda section, key: section in GOVERNOR_SECTIONS,
    )
    return tahoe_client._valid_config().update(governor)


@attrs.frozen
class GovernorSections:
    """The raw ``[backups]``, ``[bandwidth]`` and ``[maintenance]`` sections, for the policy
    layer to parse.

    Keys keep the case they have in the file (a peer selector may be a
    nickname) and values are as written, ``%`` included (no interpolation);
    only an inline comment (``#`` after whitespace, as in DESIGN.md's
    examples) is cut off, as the policy's own reader does. An absent section
    is an empty mapping.
    """

    backups: Mapping[str, str]
    bandwidth: Mapping[str, str]
    #: The file they were read from, for error messages.
    source: str
    #: The whole tahoe.cfg text they were read from, for a parser that reads the
    #: file itself (``policy.parse_policy_text``): the same text the node ran with.
    text: str = attrs.field(repr=False, default="")
    maintenance: Mapping[str, str] = attrs.field(factory=lambda: MappingProxyType({}))

    @property
    def has_backups(self) -> bool:
        """Whether the node has any backup job configured."""
        return bool(self.backups)


@attrs.frozen
class GovernedConfig:
    """A governed node's configuration: Tahoe's ``_Config`` and the governor's sections."""

    #: Tahoe's configuration object, with Foolscap forced for storage.
    tahoe: tahoe_node._Config
    sections: GovernorSections
    #: One sentence per setting this program changed from what the file says.
    forced: tuple[str, ...]

    @property
    def basedir(self) -> str:
        """The node directory (absolute)."""
        return str(self.tahoe._basedir)


def read_governed_config(basedir: str) -> GovernedConfig:
    """Read and validate NODEDIR's tahoe.cfg for a governed client node.

    Raises ``GovernedConfigError`` when ``basedir`` is not a client node
    directory, and Tahoe's own ``UnknownConfigError`` for a section or key
    neither Tahoe nor the governor knows.
    """
    basedir = os.path.abspath(os.path.expanduser(basedir))
    cfg_path = os.path.join(basedir, "tahoe.cfg")
    if not os.path.isdir(basedir):
        raise GovernedConfigError(
            f"{basedir!r} is not a directory: expected a Tahoe-LAFS node directory"
        )
    if not os.path.isfile(cfg_path):
        raise GovernedConfigError(
            f"{basedir!r} holds no tahoe.cfg: expected a node directory made by "
            "'tahoe create-node' or 'tahoe create-client'"
        )
    if os.path.exists(os.path.join(basedir, "tahoe-introducer.tac")):
        raise GovernedConfigError(
            f"{basedir!r} is an introducer: a governed node must be a client or storage node"
        )
    tahoe = tahoe_node.read_config(basedir, "client.port", _valid_config=_governor_valid_config())
    forced = tuple(_force_foolscap(tahoe))
    with open(cfg_path, encoding="utf-8-sig") as f:
        sections = _raw_sections(f.read(), cfg_path)
    return GovernedConfig(tahoe=tahoe, sections=sections, forced=forced)


def _force_foolscap(tahoe: tahoe_node._Config) -> list[str]:
    """Set ``force_foolscap = true`` in memory (never in the file); say what changed."""
    changes = []
    for section, key in FORCED_FOOLSCAP:
        try:
            current = tahoe.get_config(section, key, default=False, boolean=True)
        except ValueError:
            written = tahoe.config.get(section, key, raw=True)
            raise GovernedConfigError(
                f"[{section}] {key} = {written!r} in {tahoe._config_fname}: expected true or false"
            ) from None
        if not current:
            said = "false" if tahoe.config.has_option(section, key) else "absent"
            configutil.set_config(tahoe.config, section, key, "true")
            changes.append(
                f"[{section}] {key} is {said} in tahoe.cfg; using true: a governed node "
                "shapes Foolscap connections and Tahoe would otherwise use HTTPS for storage"
            )
    return changes


def _raw_sections(text: str, source: str) -> GovernorSections:
    """The governor's sections of ``text`` as written (see ``GovernorSections``)."""
    parser = configparser.ConfigParser(
        strict=False,
        interpolation=None,
        inline_comment_prefixes=("#",),
        default_section="\x00none",  # [DEFAULT] is just another section
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text, source=source)

    def section(name: str) -> Mapping[str, str]:
        items = dict(parser.items(name)) if parser.has_section(name) else {}
        return MappingProxyType(items)

    return GovernorSections(
        backups=section("backups"), bandwidth=section("bandwidth"), source=source, text=text,
        maintenance=section("maintenance"),
    )


def read_governed_node(basedir: str, tz: ZoneInfo) -> tuple[GovernedConfig, Policy]:
    """Judge NODEDIR as ``run`` and ``check`` both do: Tahoe's own checks of the
    directory and tahoe.cfg (sections, keys, values), then the governor's
    sections parsed into a policy (allowed times in ``tz``).

    Raises one of :data:`CONFIGURATION_ERRORS`.
    """
    config = read_governed_config(basedir)
    return config, parse_policy_text(config.sections.text, tz)
