"""STAND-IN images for tests/stand_ins/apptainer_bwrap, made from containers/rl_relay.def.

A real image is built by ``apptainer build`` from the definition file; here the
definition's sections are read with spython and written into a sandbox directory the way
Apptainer lays one out (``.singularity.d/runscript``, ``env/90-environment.sh``, ``test``),
while the image's software is a Python environment on the host, named in
``stand-in-image.json`` and shown read-only inside (see the runtime's docstring).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from spython.main.parse.parsers import SingularityParser

REPO = Path(__file__).resolve().parent.parent.parent
DEF_FILE = REPO / "containers" / "rl_relay.def"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Definition:
    """The sections of a definition file, as written (spython keeps the lines, stripped)."""

    header: str = ""
    files: list[tuple[str, str]] = field(default_factory=list)
    arguments: dict[str, str] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)

    def section(self, name: str) -> list[str]:
        return self.sections.get(name, [])

    def script(self, name: str, build_args: dict[str, str] | None = None) -> str:
        """A section as a shell script, ``{{ NAME }}`` replaced as ``apptainer build`` does."""
        values = {**self.arguments, **(build_args or {})}
        text = "\n".join(self.section(name)) + "\n"
        for key, value in values.items():
            for spelling in (f"{{{{ {key} }}}}", f"{{{{{key}}}}}"):
                text = text.replace(spelling, value)
        return text


class _Reader(SingularityParser):
    """spython's parser, keeping every section's lines instead of converting to Docker."""

    def __init__(self, filename: str) -> None:
        self.definition = Definition()
        super().__init__(filename)

    def _get_mapping(self, section: str):
        def keep(lines: list[str], *_layer: object) -> None:
            self.definition.sections.setdefault(section.lower(), []).extend(lines)

        return keep


def read_definition(def_file: Path = DEF_FILE) -> Definition:
    """Read a definition file with spython: header, %files, %arguments and raw sections."""
    reader = _Reader(str(def_file))
    (recipe,) = reader.recipe.values()
    definition = reader.definition
    definition.header = recipe.fromHeader
    definition.files = [(line.split()[0], line.split()[-1]) for line in definition.section("files")]
    for line in definition.section("arguments"):
        key, sep, value = line.partition("=")
        if sep:
            definition.arguments[key.strip()] = value.strip()
    return definition


def python_dirs(python: str = sys.executable) -> tuple[list[str], str]:
    """The host directories a Python environment needs, and its ``bin`` directory.

    A virtual environment's ``python`` is a symlink into its base installation, so both
    the environment and the base prefix (with symlinks resolved) are needed, and so is the
    directory rl_relay is imported from when it is installed in editable mode: an image has
    rl-relay installed (its ``%post``), and the learner runs that copy.
    """
    prefix = Path(python).absolute().parent.parent
    base = Path(os.path.realpath(python)).parent.parent
    found = subprocess.run(
        [python, "-I", "-c", "import rl_relay, pathlib; print(pathlib.Path(rl_relay.__file__))"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.strip()
    dirs = [prefix, base]
    if found and not Path(found).is_relative_to(prefix):
        dirs.append(Path(found).parent.parent)  # .../src of an editable install
    return list(dict.fromkeys(str(p) for p in dirs if p != Path("/usr"))), str(prefix / "bin")


def write_sandbox(
    image: Path,
    definition: Definition,
    read_only: list[str],
    path_first: str,
) -> Path:
    """Lay out a stand-in sandbox image in ``image`` and return it."""
    meta = image / ".singularity.d"
    (meta / "env").mkdir(parents=True, exist_ok=True)
    # what `apptainer build` writes for a docker base: the image's PATH first
    (meta / "env" / "10-docker2singularity.sh").write_text(
        f'#!/bin/sh\nexport PATH="{path_first}:{IMAGE_PATH}"\n'
    )
    (meta / "env" / "90-environment.sh").write_text(
        "#!/bin/sh\n" + definition.script("environment")
    )
    for name, file in (("runscript", "runscript"), ("test", "test")):
        (meta / file).write_text("#!/bin/sh\n" + definition.script(name))
        (meta / file).chmod(0o755)
    (image / "stand-in-image.json").write_text(json.dumps({"read_only": read_only}))
    return image
