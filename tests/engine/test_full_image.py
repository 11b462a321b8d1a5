"""The full image variant: Java, Go, Rust, Ruby and R as stateless languages, against a
real sandbox of ``e2b-tools/sandbox-full`` built offline from Debian packages."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from e2b_tools import InvalidArgumentError, Sandbox, SandboxTimeoutError
from e2b_tools.agent.languages import LANGUAGE_TABLE
from e2b_tools.images import (
    FULL_IMAGE,
    FULL_PACKAGES,
    FULL_ROOTFS_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    build_image,
    packages_hash,
)

FULL_ONLY = [entry["name"] for entry in LANGUAGE_TABLE if entry["image"] == "full"]

# Each program prints "hello <$WHO>" and exits with the code in $CODE.
GREETERS = {
    "java": (
        "import java.util.*;\n"
        "class Greeter {\n"
        "    public static void main(String[] args) {\n"
        '        List<String> parts = new ArrayList<>(List.of("hello", System.getenv("WHO")));\n'
        '        System.out.println(String.join(" ", parts));\n'
        '        System.exit(Integer.parseInt(System.getenv("CODE")));\n'
        "    }\n"
        "}\n"
    ),
    "go": (
        "package main\n\n"
        'import (\n\t"fmt"\n\t"os"\n\t"strconv"\n)\n\n'
        "func main() {\n"
        '\tfmt.Println("hello", os.Getenv("WHO"))\n'
        '\tcode, _ := strconv.Atoi(os.Getenv("CODE"))\n'
        "\tos.Exit(code)\n"
        "}\n"
    ),
    "rust": (
        "use std::env;\n"
        "fn main() {\n"
        '    let who = env::var("WHO").unwrap_or_default();\n'
        '    println!("hello {}", who);\n'
        '    std::process::exit(env::var("CODE").unwrap().parse().unwrap());\n'
        "}\n"
    ),
    "ruby": 'puts "hello #{ENV["WHO"]}"\nexit Integer(ENV["CODE"])\n',
    "r": (
        'cat("hello", Sys.getenv("WHO"), "\\n")\n'
        'quit(status = as.integer(Sys.getenv("CODE")), save = "no")\n'
    ),
}

# Programs that must not get past their compiler (or parser), and what it says.
BROKEN = {
    "java": ("class Broken { public static void main(String[] a) { int x = ; } }\n", "error:"),
    "go": ("package main\n\nfunc main() { missing() }\n", "undefined: missing"),
    "rust": ('fn main() { let x: i32 = "text"; }\n', "mismatched types"),
    "ruby": ("def broken(\n", "syntax error"),
    "r": ("f <- function( {\n", "unexpected"),
}


@pytest.fixture(scope="module")
def full(full_image: str) -> Iterator[Sandbox]:
    sbx = Sandbox.create(image=full_image, timeout=900)
    try:
        yield sbx
    finally:
        sbx.kill()


def test_every_full_language_is_in_the_test_tables() -> None:
    assert sorted(FULL_ONLY) == sorted(GREETERS) == sorted(BROKEN)


def test_full_image_labels(full_image: str, docker_client: docker.DockerClient) -> None:
    assert full_image == FULL_IMAGE
    image = docker_client.images.get(FULL_IMAGE)
    assert image.labels[IMAGE_KIND_LABEL] == "sandbox-full"
    assert image.labels[PACKAGES_LABEL] == packages_hash("full")
    rootfs = docker_client.images.get(FULL_ROOTFS_IMAGE)
    assert rootfs.labels[IMAGE_KIND_LABEL] == "sandbox-full-rootfs"
    lines: list[str] = []
    assert build_image(variant="full", client=docker_client, log=lines.append) == FULL_IMAGE
    assert any("skipped" in line for line in lines), lines


def test_full_sandbox_has_every_language(full: Sandbox) -> None:
    every = ", ".join(entry["name"] for entry in LANGUAGE_TABLE)
    with pytest.raises(InvalidArgumentError, match=rf"available: {every} \[sandbox"):
        full.run_code("1", language="cobol")
    installed = full.commands.run(
        "dpkg-query -W -f '${Package} ${Status}\\n' " + " ".join(FULL_PACKAGES)
    )
    assert installed.stdout.count("install ok installed") == len(FULL_PACKAGES)


@pytest.mark.parametrize("language", sorted(GREETERS))
def test_program_runs_with_envs_and_exit_code(full: Sandbox, language: str) -> None:
    code = GREETERS[language]
    chunks: list[str] = []
    ok = full.run_code(
        code,
        language=language,
        envs={"WHO": language, "CODE": "0"},
        on_stdout=chunks.append,
        timeout=120,
    )
    assert ok.error is None, ok.logs.stderr
    assert "".join(ok.logs.stdout).split() == ["hello", language]
    assert "".join(chunks) == "".join(ok.logs.stdout)

    failed = full.run_code(code, language=language, envs={"WHO": "x", "CODE": "3"}, timeout=120)
    assert "".join(failed.logs.stdout).split() == ["hello", "x"]
    assert failed.error is not None
    assert (failed.error.name, failed.error.value) == (
        "NonZeroExit",
        "the program exited with code 3",
    )


@pytest.mark.parametrize("language", sorted(BROKEN))
def test_broken_program_reports_the_compiler_or_parser(full: Sandbox, language: str) -> None:
    code, says = BROKEN[language]
    execution = full.run_code(code, language=language, timeout=120)
    assert execution.error is not None
    stderr = "".join(execution.logs.stderr)
    assert says in stderr, stderr
    assert execution.logs.stdout == []
    if "build" in {k for k, v in _spec(language).items() if v}:
        assert execution.error.name == "CompileError"
    else:
        assert execution.error.name == "NonZeroExit"


@pytest.mark.parametrize(("alias", "language"), [("golang", "go"), ("rs", "rust"), ("rb", "ruby")])
def test_aliases(full: Sandbox, alias: str, language: str) -> None:
    execution = full.run_code(
        GREETERS[language], language=alias, envs={"WHO": alias, "CODE": "0"}, timeout=120
    )
    assert "".join(execution.logs.stdout).split() == ["hello", alias]


def test_each_call_is_a_fresh_program(full: Sandbox) -> None:
    full.run_code('File.write("mark.txt", "x"); $kept = 1', language="ruby")
    execution = full.run_code(
        'puts File.exist?("mark.txt"); puts defined?($kept).inspect', language="ruby"
    )
    assert execution.logs.stdout == ["false\nnil\n"]
    with pytest.raises(InvalidArgumentError, match="stateless"):
        full.create_code_context(language="go")


def test_timeout_kills_a_runaway_program(full: Sandbox) -> None:
    with pytest.raises(SandboxTimeoutError):
        full.run_code("package main\n\nfunc main() { for {} }\n", language="go", timeout=20)
    after = full.run_code(GREETERS["ruby"], language="ruby", envs={"WHO": "on", "CODE": "0"})
    assert after.logs.stdout == ["hello on\n"]


def test_default_image_points_to_the_full_variant(sandbox: Sandbox) -> None:
    for language in FULL_ONLY:
        with pytest.raises(InvalidArgumentError, match=r"--variant full\); available: python"):
            sandbox.run_code("1", language=language)


def _spec(language: str) -> dict[str, object]:
    return dict(next(entry for entry in LANGUAGE_TABLE if entry["name"] == language))
