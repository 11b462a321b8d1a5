"""The table of languages ``run_code`` accepts (standard library only).

One entry per language: its aliases, how its state behaves, which image has it and
what must be installed for it. The agent derives its aliases and its list of available
languages from this table, and ``docs/languages.md`` is generated from it.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, TypedDict


class LanguageSpec(TypedDict):
    name: str
    aliases: List[str]
    state: str
    image: str
    needs: List[str]
    runtime: str
    file: str
    """Stateless languages: the file the code is written to ("" for stateful ones)."""
    build: str
    """Stateless languages: the command that compiles it ("" when none is needed)."""
    run: str
    """Stateless languages: the command that runs it."""


STATELESS = "stateless: each call compiles and runs a fresh program"


LANGUAGE_TABLE: Tuple[LanguageSpec, ...] = (
    {
        "name": "python",
        "aliases": ["py", "python3"],
        "state": "stateful: variables, imports and cwd persist per context",
        "image": "default",
        "needs": [],
        "runtime": "python3, forked from the agent (about 1 ms per new context)",
        "file": "",
        "build": "",
        "run": "",
    },
    {
        "name": "bash",
        "aliases": ["sh", "shell"],
        "state": "stateful: cd, variables, functions and exports persist per context",
        "image": "default",
        "needs": ["bash"],
        "runtime": "bash sourcing each call's code; a non-zero $? is the error",
        "file": "",
        "build": "",
        "run": "",
    },
    {
        "name": "javascript",
        "aliases": ["js"],
        "state": (
            "stateful: globals and top-level let/const/function persist; top-level await; "
            "import statements"
        ),
        "image": "default",
        "needs": ["node"],
        "runtime": "node running kernel_node.js (vm.runInThisContext)",
        "file": "",
        "build": "",
        "run": "",
    },
    {
        "name": "typescript",
        "aliases": ["ts"],
        "state": "stateful, like javascript (transpiled inside the sandbox)",
        "image": "default",
        "needs": ["node", "typescript"],
        "runtime": "node + the typescript package's transpileModule",
        "file": "",
        "build": "",
        "run": "",
    },
    {
        "name": "c",
        "aliases": [],
        "state": STATELESS,
        "image": "default",
        "needs": ["gcc"],
        "runtime": "gcc -O2, then the binary",
        "file": "main.c",
        "build": "gcc -O2 -o main main.c -lm",
        "run": "./main",
    },
    {
        "name": "cpp",
        "aliases": ["c++", "cxx"],
        "state": STATELESS,
        "image": "default",
        "needs": ["g++"],
        "runtime": "g++ -O2 -std=c++17, then the binary",
        "file": "main.cpp",
        "build": "g++ -O2 -std=c++17 -o main main.cpp",
        "run": "./main",
    },
    {
        "name": "java",
        "aliases": [],
        "state": STATELESS,
        "image": "full",
        "needs": ["java"],
        "runtime": "java in source-file mode: the first class runs; a compile error exits 1",
        "file": "Main.java",
        "build": "",
        "run": "java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 Main.java",
    },
    {
        "name": "go",
        "aliases": ["golang"],
        "state": STATELESS,
        "image": "full",
        "needs": ["go"],
        "runtime": "go build (package main, standard library only), then the binary",
        "file": "main.go",
        "build": "go build -o main main.go",
        "run": "./main",
    },
    {
        "name": "rust",
        "aliases": ["rs"],
        "state": STATELESS,
        "image": "full",
        "needs": ["rustc"],
        "runtime": "rustc --edition 2021, then the binary (standard library only)",
        "file": "main.rs",
        "build": "rustc --edition 2021 -o main main.rs",
        "run": "./main",
    },
    {
        "name": "ruby",
        "aliases": ["rb"],
        "state": STATELESS,
        "image": "full",
        "needs": ["ruby"],
        "runtime": "ruby",
        "file": "main.rb",
        "build": "",
        "run": "ruby main.rb",
    },
    {
        "name": "r",
        "aliases": [],
        "state": STATELESS,
        "image": "full",
        "needs": ["Rscript"],
        "runtime": "Rscript (base R)",
        "file": "main.R",
        "build": "",
        "run": "Rscript main.R",
    },
)

_TS_DIRS = (
    "/usr/share/nodejs/typescript",
    "/usr/lib/node_modules/typescript",
    "/usr/local/lib/node_modules/typescript",
)


def aliases() -> Dict[str, str]:
    """Alias -> language name, names included."""
    out: Dict[str, str] = {}
    for entry in LANGUAGE_TABLE:
        out[entry["name"]] = entry["name"]
        for alias in entry["aliases"]:
            out[alias] = entry["name"]
    return out


def resolve(asked: str) -> str:
    """The table name for a language or alias, any case (unknown names come back
    lower-cased, for the caller to refuse with :func:`unavailable`)."""
    lowered = str(asked).lower()
    return _ALIASES.get(lowered, lowered)


def known(asked: str) -> bool:
    """Whether ``asked`` names a language of the table (a name or alias, any case)."""
    return str(asked).lower() in _ALIASES


def spec(name: str) -> LanguageSpec:
    """The table entry of a language name (not an alias)."""
    return next(entry for entry in LANGUAGE_TABLE if entry["name"] == name)


def unavailable(asked: str, available: Sequence[str]) -> str:
    """The error text for a language a sandbox lacks: where to get it, what it has."""
    name = aliases().get(asked.lower())
    where = ""
    if name is not None and spec(name)["image"] != "default":
        image = spec(name)["image"]
        where = f" (it is in the {image} image: e2b-tools image build --variant {image})"
    return (
        f"language {asked!r} is not available in this sandbox{where}; "
        f"available: {', '.join(available)}"
    )


def available() -> Tuple[str, ...]:
    """The languages whose needs this machine meets, in table order."""
    import os
    import shutil

    def has(need: str) -> bool:
        if need == "typescript":
            return any(os.path.isdir(d) for d in _TS_DIRS)
        return shutil.which(need) is not None

    found: List[str] = []
    for entry in LANGUAGE_TABLE:
        if all(has(n) for n in entry["needs"]):
            found.append(entry["name"])
    return tuple(found)


_ALIASES = aliases()
