"""What agents reach for in the default image: package managers, fetch tools, git, and
E2B's preinstalled Python libraries; installs land in the workspace (the root is
read-only) and import at once. No network is used: packages come from the sandbox."""

from __future__ import annotations

import textwrap

from e2b_tools import Sandbox

E2B_LIBRARIES_DEBIAN_HAS = [
    "aiohttp",
    "bs4",
    "cv2",
    "docx",
    "gensim",
    "imageio",
    "joblib",
    "matplotlib",
    "nltk",
    "numpy",
    "openpyxl",
    "pandas",
    "plotly",
    "pydub",
    "pytest",
    "pytz",
    "requests",
    "scipy",
    "seaborn",
    "skimage",
    "sklearn",
    "soundfile",
    "sympy",
    "tornado",
    "urllib3",
    "xarray",
    "xlrd",
    "yaml",
]


def test_package_managers_and_tools_are_there(sandbox: Sandbox) -> None:
    out = sandbox.commands.run(
        "pip --version; npm --version; git --version; curl --version | head -1; "
        "wget --version | head -1; unzip -v | head -1"
    ).stdout
    for name in ("pip ", "git version", "curl ", "Wget", "UnZip"):
        assert name in out, out


def test_e2b_preinstalled_libraries_import(sandbox: Sandbox) -> None:
    code = "import importlib\n" + "\n".join(
        f"importlib.import_module({name!r})" for name in E2B_LIBRARIES_DEBIAN_HAS
    )
    execution = sandbox.run_code(code, timeout=300)
    assert execution.error is None, execution.error


def test_pip_install_lands_in_the_workspace_and_imports_at_once(sandbox: Sandbox) -> None:
    sandbox.files.write(
        "tinypkg/pyproject.toml",
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "tinypkg"
            version = "1.0"
            """
        ),
    )
    sandbox.files.write("tinypkg/tinypkg/__init__.py", "VALUE = 'installed'\n")
    sandbox.run_code("import sys")  # the kernel is running before the install
    result = sandbox.commands.run(
        "pip install --no-index --no-build-isolation ./tinypkg", timeout=180
    )
    assert "Successfully installed tinypkg" in result.stdout, result.stderr
    assert sandbox.run_code("import tinypkg; tinypkg.VALUE").text == "installed"
    where = sandbox.run_code("tinypkg.__file__").text or ""
    assert where.startswith("/home/user/.local/"), where


def test_npm_installs_into_the_workspace(sandbox: Sandbox) -> None:
    sandbox.files.write("lib/package.json", '{"name": "tinylib", "version": "1.0.0"}')
    sandbox.files.write("lib/index.js", "module.exports = () => 'from npm';\n")
    sandbox.files.write("app/package.json", '{"name": "app", "version": "1.0.0"}')
    sandbox.commands.run("cd app && npm install --offline --no-audit --no-fund ../lib", timeout=180)
    out = sandbox.commands.run("cd app && node -e \"console.log(require('tinylib')())\"")
    assert out.stdout == "from npm\n"
    sandbox.commands.run("npm install -g --offline --no-audit --no-fund ./lib", timeout=180)
    assert sandbox.commands.run("ls ~/.npm-global/lib/node_modules").stdout.strip() == "tinylib"


def test_git_works_for_the_user(sandbox: Sandbox) -> None:
    out = sandbox.commands.run(
        "git init -q repo && cd repo && echo hi > a.txt && git add a.txt && "
        "git -c user.name=agent -c user.email=agent@localhost commit -qm first && "
        "git log --oneline | wc -l"
    ).stdout
    assert out.strip() == "1"
