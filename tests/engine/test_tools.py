"""The framework-neutral tool layer against real sandboxes."""

from __future__ import annotations

import base64

import docker
import pytest

from e2b_tools import InvalidArgumentError, Sandbox, UnknownToolError
from e2b_tools.tools import Toolkit


@pytest.fixture
def toolkit(image: str) -> Toolkit:
    with Toolkit(budget=2000) as kit:
        yield kit  # type: ignore[misc]


def test_state_persists_across_tool_calls(toolkit: Toolkit) -> None:
    run = toolkit.get("run_code")
    assert not run.run(code="x = 20").is_error
    out = run.run(code="print('half')\nx * 2")
    assert out.text == "[output]\nhalf\n[result]\n40"
    assert not out.is_error


def test_code_error_is_text_with_the_last_frames(toolkit: Toolkit) -> None:
    out = toolkit.get("run_code").run(code="def f():\n    return {}['k']\nf()")
    assert out.is_error
    assert "[error] KeyError: 'k'" in out.text
    assert "return {}['k']" in out.text
    assert "kernel_python" not in out.text


def test_bad_arguments_are_explained(toolkit: Toolkit) -> None:
    out = toolkit.get("run_shell").run(cmd="ls")  # wrong name
    assert out.is_error
    assert "Invalid arguments for run_shell" in out.text
    assert "command: Field required" in out.text
    out = toolkit.get("read_file").run(path="x", offset=0)
    assert "offset" in out.text and out.is_error
    # No sandbox was needed to reject them.
    assert toolkit.session.sandbox is None


def test_shell_output_exit_code_and_timeout(toolkit: Toolkit) -> None:
    shell = toolkit.get("run_shell")
    out = shell.run(command="echo out; echo err >&2; exit 4")
    assert out.text == "out\nerr\n[exit code: 4]"
    assert out.is_error
    out = shell.run(command="echo before; sleep 30", timeout=1)
    assert out.is_error
    assert "Timed out after 1s" in out.text
    assert "before" in out.text
    assert shell.run(command="echo after").text == "after\n[exit code: 0]"


def test_flood_is_cut_and_saved_in_full(toolkit: Toolkit) -> None:
    shell = toolkit.get("run_shell")
    out = shell.run(command="seq 1 200000")
    assert len(out.text) <= 2000
    assert out.text.startswith("1\n2\n3\n")
    assert out.text.endswith("200000\n[exit code: 0]")
    assert "lines" in out.text and "omitted" in out.text
    path = out.text.split("full output saved to ")[1].split(";")[0]
    offset = int(out.text.split("offset=")[1].split(",")[0])
    page = toolkit.get("read_file").run(path=path, offset=offset, limit=3)
    assert page.text.splitlines()[0] == f"{offset:6d}\t{offset}"
    assert "of 200000" in page.text
    # The saved file is complete.
    assert shell.run(command=f"wc -l < {path}").text.startswith("200000\n")


def test_ansi_and_progress_lines_are_cleaned(toolkit: Toolkit) -> None:
    out = toolkit.get("run_shell").run(
        command=r"printf '\033[32mgreen\033[0m\n10%%\r50%%\r100%%\ndone\n'"
    )
    assert out.text == "green\n100%\ndone\n[exit code: 0]"


def test_files_and_workspace_boundary(toolkit: Toolkit) -> None:
    write, read, ls = toolkit.get("write_file"), toolkit.get("read_file"), toolkit.get("list_files")
    assert "Wrote /home/user/src/app.py" in write.run(path="src/app.py", content="a\nb\nc\n").text
    write.run(path="src/app.py", content="d\n", append=True)
    assert read.run(path="src/app.py").text == (
        "     1\ta\n     2\tb\n     3\tc\n     4\td\n[src/app.py: lines 1-4 of 4]"
    )
    assert read.run(path="src/app.py", offset=2, limit=2).text.endswith(
        "[src/app.py: lines 2-3 of 4; continue with offset=4]"
    )
    listing = ls.run(path=".", depth=2).text
    assert "dir" in listing and "src/app.py" in listing
    for bad in ("/etc/passwd", "../../etc/passwd"):
        out = read.run(path=bad)
        assert out.is_error and "outside the workspace" in out.text
    missing = read.run(path="nope.txt")
    assert missing.is_error and "Not found" in missing.text
    assert "is a directory" in read.run(path="src").text


def test_binary_and_images(toolkit: Toolkit) -> None:
    toolkit.get("run_code").run(
        code=(
            "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.savefig('c.png')\n"
            "open('blob.bin', 'wb').write(bytes(range(256)) * 4)"
        )
    )
    image = toolkit.get("read_file").run(path="c.png")
    assert image.artifacts and image.artifacts[0].mime_type == "image/png"
    assert base64.b64decode(image.artifacts[0].data).startswith(b"\x89PNG")
    assert "base64" not in image.text and len(image.text) < 200
    blob = toolkit.get("read_file").run(path="blob.bin")
    assert "binary data: 1.0 KiB" in blob.text
    shell = toolkit.get("run_shell").run(command="head -c 3000 /dev/urandom")
    assert shell.text.startswith("[binary output, ")  # summarised, never dumped raw
    assert shell.text.endswith("[exit code: 0]")


def test_dead_sandbox_is_replaced_and_the_model_told(
    toolkit: Toolkit, docker_client: docker.DockerClient
) -> None:
    run = toolkit.get("run_code")
    run.run(code="v = 1")
    sbx = toolkit.session.sandbox
    assert sbx is not None
    docker_client.api.kill(sbx.container_id)
    out = run.run(code="'v' in globals()")
    assert "killed, or ran out of memory), so a new sandbox was started" in out.text
    assert "[result]\nFalse" in out.text
    assert toolkit.session.sandbox is not sbx


def test_given_sandbox_is_used_and_not_killed(image: str) -> None:
    with Sandbox.create() as sbx:
        sbx.run_code("given = 'yes'")
        kit = Toolkit(sbx)
        assert kit.get("run_code").run(code="given").text == "[result]\nyes"
        kit.close()
        assert sbx.is_running()


def test_charts_survive_an_error_and_a_timeout(toolkit: Toolkit) -> None:
    run = toolkit.get("run_code")
    show = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\n"
    out = run.run(code=show + "raise ValueError('after the chart')")
    assert out.is_error and "[error] ValueError: after the chart" in out.text
    assert "[image figure-1.png returned as an artifact]" in out.text
    assert [a.name for a in out.artifacts] == ["figure-1.png"]
    assert base64.b64decode(out.artifacts[0].data).startswith(b"\x89PNG")
    out = run.run(code=show + "import time\ntime.sleep(30)", timeout=3)
    assert out.is_error and "Timed out after 3s" in out.text
    assert [a.mime_type for a in out.artifacts] == ["image/png"]


def test_name_prefix_reaches_names_descriptions_and_texts(image: str) -> None:
    with Toolkit(budget=2000, name_prefix="sbx_") as kit:
        assert [t.name for t in kit.tools()] == [
            "sbx_run_code",
            "sbx_run_shell",
            "sbx_read_file",
            "sbx_write_file",
            "sbx_list_files",
        ]
        assert kit.tools()[0].base_name == "run_code"
        assert kit.get("sbx_read_file") is kit.get("read_file")
        assert "page with sbx_read_file" in kit.get("run_code").description
        flood = kit.get("run_shell").run(command="seq 1 100000")
        assert "read the rest with sbx_read_file(path=" in flood.text
        kit.get("run_shell").run(command="mkdir -p d && head -c 100 /dev/urandom > d/b.bin")
        assert "use sbx_list_files" in kit.get("read_file").run(path="d").text
        assert "inspect it with sbx_run_code" in kit.get("read_file").run(path="d/b.bin").text
        refused = kit.get("run_code").run()
        assert refused.text.startswith("Invalid arguments for sbx_run_code")
        with pytest.raises(UnknownToolError, match="sbx_run_code"):
            kit.get("rm_rf")


@pytest.mark.parametrize("prefix", ["sbx ", "sbx.", "ä_", "x" * 55, 7])
def test_name_prefix_must_keep_names_valid_for_model_apis(prefix: object) -> None:
    with pytest.raises(InvalidArgumentError, match="name_prefix"):
        Toolkit(name_prefix=prefix)  # type: ignore[arg-type]
    longest = "a-" + "x" * 52  # 64 characters with list_files, the longest name
    assert Toolkit(name_prefix=longest).get("list_files").name == longest + "list_files"
