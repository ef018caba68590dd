"""Where HDF5 looks for a file that another file names.

External links and the mappings of virtual datasets name other files. HDF5
looks for such a file in a fixed order (the same for both): the name itself
if it is absolute; then, with only its last component if an absolute name was
not found, each prefix of an environment variable (`HDF5_EXT_PREFIX` for
links, `HDF5_VDS_PREFIX` for virtual datasets), the prefix of the access
property list (`H5Pset_elink_prefix`, `H5Pset_virtual_prefix`), the directory
of the naming file, and the name as given. In a virtual dataset's prefixes
(not a link's), a leading `${ORIGIN}` means the naming file's directory.

Owns: that search order, as a list of names to try; the caller tries them
through the naming file's connector.
"""

from __future__ import annotations

import os
import posixpath

ORIGIN = "${ORIGIN}"
ELINK_PREFIX_ENV = "HDF5_EXT_PREFIX"
VDS_PREFIX_ENV = "HDF5_VDS_PREFIX"


def expand_origin(prefix: str, naming_file: str) -> str:
    """`prefix` with a leading `${ORIGIN}` replaced, as HDF5 does, by the
    naming file's directory (with its trailing slash)."""
    if prefix.startswith(ORIGIN):
        return posixpath.dirname(naming_file) + "/" + prefix[len(ORIGIN) :]
    return prefix


def _with_prefix(prefix: str, name: str, naming_file: str | None) -> str:
    if naming_file is not None:
        prefix = expand_origin(prefix, naming_file)
    return posixpath.normpath(posixpath.join(prefix, name)) if prefix else name


def candidate_names(filename: str, naming_file: str, prefix: str | None, env_var: str) -> list[str]:
    """The names to try, in HDF5's order, for `filename` named from the file
    `naming_file` with the access property list's `prefix` (None: not set);
    `env_var` is ELINK_PREFIX_ENV or VDS_PREFIX_ENV. Each name appears once."""
    origin_file = naming_file if env_var == VDS_PREFIX_ENV else None
    origin = posixpath.dirname(naming_file)
    names = []
    leaf = filename
    if posixpath.isabs(filename):
        names.append(filename)
        leaf = posixpath.basename(filename)
    env = os.environ.get(env_var)
    for entry in env.split(":") if env else []:
        if entry:
            names.append(_with_prefix(entry, leaf, origin_file))
    if prefix:
        names.append(_with_prefix(prefix, leaf, origin_file))
    if origin:
        names.append(posixpath.join(origin, leaf))
    names.append(leaf)
    return list(dict.fromkeys(names))
