"""The one build step pyproject.toml cannot declare: compile the message catalogs into the wheel.

gimport/locale/<lang>/LC_MESSAGES/gimport.po (in git) -> gimport.mo beside it in the build (not in git).
An editable install reads the .mo compiled in the source tree by scripts/test or scripts/i18n.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path("gimport/locale").glob("*/LC_MESSAGES/gimport.po")):
            mo = Path(self.build_lib) / po.with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with open(po, "rb") as src, open(mo, "wb") as out:
                write_mo(out, read_po(src, domain="gimport"), use_fuzzy=False)


setup(cmdclass={"build_py": BuildPyWithCatalogs})
