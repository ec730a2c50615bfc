"""Build step that ships the study data and the compiled catalogs inside the package.

The sources stay at the top level (``questionnaires/``, ``translations/*.po``); a wheel or a
plain ``pip install .`` copies the questionnaires into ``pro_service/_data/questionnaires`` and
compiles every catalog into ``pro_service/_data/translations``, so an installation works from
any folder without a source checkout. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithStudyData(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        data = Path(self.build_lib) / "pro_service" / "_data"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(
            ROOT / "questionnaires",
            data / "questionnaires",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted((ROOT / "translations").glob("*/LC_MESSAGES/messages.po")):
            language = po.parent.parent.name
            with po.open("rb") as source:
                catalog = read_po(source, locale=language)
            target = data / "translations" / language / "LC_MESSAGES" / "messages.mo"
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                write_mo(out, catalog)


setup(cmdclass={"build_py": BuildWithStudyData})
