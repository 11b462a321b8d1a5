"""``E2BToolsExecutor``: smolagents' remote-executor contract, on real sandboxes.

The checks smolagents makes of its own remote executors (state across steps, final
answers in every position, custom final-answer tools, images, syntax errors, cleanup),
then what a ``CodeAgent`` run needs (tools and variables sent in, errors as text for
the model, infrastructure failures for the operator), then hostile steps.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import PIL.Image
import pytest
from helpers import run_example
from smolagents import ChatMessage, CodeAgent, FinalAnswerTool, Model, tool
from smolagents.monitoring import LogLevel
from smolagents.utils import AgentError

from e2b_tools import (
    EngineUnavailableError,
    InvalidArgumentError,
    Sandbox,
    SandboxConfig,
    SandboxGoneError,
    SandboxNotFoundError,
)
from e2b_tools.backends.docker import LABEL_SANDBOX, DockerBackend
from e2b_tools_smolagents import (
    E2BToolsExecutor,
    PackageInstallError,
    SandboxInfrastructureError,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def executor(sandbox: Sandbox) -> Iterator[E2BToolsExecutor]:
    ex = E2BToolsExecutor(sandbox=sandbox, step_timeout=60)
    try:
        ex.send_tools({"final_answer": FinalAnswerTool()})
        yield ex
    finally:
        ex.cleanup()


def assert_killed(sandbox_id: str) -> None:
    with pytest.raises(SandboxNotFoundError):
        Sandbox.connect(sandbox_id)


class ScriptedModel(Model):
    """Answers with the given replies in turn, as a model would."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)
        self.calls = 0

    def generate(self, messages: Any, *args: Any, **kwargs: Any) -> ChatMessage:
        self.calls += 1
        return ChatMessage(role="assistant", content=self.replies.pop(0))


@tool
def sandbox_hostname(suffix: str) -> str:
    """The host name of the machine this tool runs on, with a suffix.

    Args:
        suffix: Text appended to the host name.
    """
    import socket

    return socket.gethostname() + suffix


# -- smolagents' own checks of remote executors ---------------------------------------
def test_state_persists_across_steps(executor: E2BToolsExecutor) -> None:
    executor("import numpy as np; a = 2")
    out = executor("print(np.sqrt(a))")
    assert "1.41421" in out.logs
    assert out.is_final_answer is False


def test_trailing_expression_is_the_step_output(executor: E2BToolsExecutor) -> None:
    out = executor("x = 20\nprint('computing')\nx * 2 + 2")
    assert (out.output, out.logs, out.is_final_answer) == ("42", "computing\n", False)
    assert executor("y = 1").output is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ('final_answer("This is the final answer")', "This is the final answer"),
        ('result = "This is the final answer"\nfinal_answer(result)', "This is the final answer"),
        (
            'final_answer("""This is\na multiline\nfinal answer""")',
            "This is\na multiline\nfinal answer",
        ),
        (
            "text = '''Text containing\nfinal_answer(5)\n'''\nfinal_answer(text)",
            "Text containing\nfinal_answer(5)\n",
        ),
        (
            'num = 2\nif num == 1:\n    final_answer("One")\n'
            'elif num == 2:\n    final_answer("Two")',
            "Two",
        ),
        ("final_answer({'total': 42, 'items': (1, 2)})", {"total": 42, "items": (1, 2)}),
    ],
)
def test_final_answer_patterns(executor: E2BToolsExecutor, code: str, expected: Any) -> None:
    out = executor(code)
    assert out.is_final_answer is True
    assert out.output == expected


def test_final_answer_in_the_middle_of_code_stops_the_step(executor: E2BToolsExecutor) -> None:
    out = executor("print('before')\nfinal_answer(7)\nprint('after')\nran_after = True")
    assert (out.output, out.is_final_answer) == (7, True)
    assert out.logs == "before\n"
    with pytest.raises(AgentError, match="NameError"):
        executor("ran_after")


def test_custom_final_answer_tools(executor: E2BToolsExecutor) -> None:
    class Prefixed(FinalAnswerTool):
        def forward(self, answer: str) -> str:
            return "CUSTOM" + answer

    executor.send_tools({"final_answer": Prefixed()})
    assert executor('final_answer(answer="_answer")').output == "CUSTOM_answer"

    class TwoParts(FinalAnswerTool):
        inputs = {
            "answer1": {"type": "string", "description": "First part."},
            "answer2": {"type": "string", "description": "Second part."},
        }

        def forward(self, answer1: str, answer2: str) -> str:
            return answer1 + "CUSTOM" + answer2

    executor.send_tools({"final_answer": TwoParts()})
    out = executor('final_answer(\n    answer1="answer1_",\n    answer2="_answer2"\n)')
    assert (out.output, out.is_final_answer) == ("answer1_CUSTOM_answer2", True)


def test_image_final_answer_and_image_output(executor: E2BToolsExecutor) -> None:
    out = executor(
        "from PIL import Image\n"
        "image = Image.new('RGB', (10, 10), (255, 0, 0))\n"
        "final_answer(image)"
    )
    assert isinstance(out.output, PIL.Image.Image) and out.is_final_answer
    assert out.output.getpixel((0, 0)) == (255, 0, 0)
    figure = executor(
        "import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 3, 2])\nfig"
    )
    assert isinstance(figure.output, PIL.Image.Image) and figure.output.format == "PNG"
    assert figure.is_final_answer is False


def test_syntax_error_is_an_agent_error(executor: E2BToolsExecutor) -> None:
    with pytest.raises(AgentError) as info:
        executor('print("Missing Parenthesis')
    assert "SyntaxError" in str(info.value)


def test_error_carries_printed_output_and_traceback(executor: E2BToolsExecutor) -> None:
    with pytest.raises(AgentError) as info:
        executor("def inner():\n    return {}['missing']\nprint('step started')\ninner()")
    text = str(info.value)
    assert text.startswith("step started\n")
    assert "Executing code yielded an error:" in text
    assert "return {}['missing']" in text and "in inner" in text  # the user's frames
    assert text.rstrip().endswith("KeyError: 'missing'")


def test_cleanup_kills_only_the_sandbox_it_created(sandbox: Sandbox, image: str) -> None:
    own = E2BToolsExecutor(config=SandboxConfig(timeout=120))
    assert own.sandbox is not None
    own_id = own.sandbox.sandbox_id
    own.delete()
    own.cleanup()  # again: nothing left to do
    assert own.sandbox is None
    assert_killed(own_id)
    with pytest.raises(SandboxGoneError, match="cleaned up"):
        own.run_code_raise_errors("1")

    sandbox.run_code("mine = 'untouched'")
    shared = E2BToolsExecutor(sandbox=sandbox)
    shared("mine = 'overwritten?'")  # the executor's own context, not the default one
    shared.cleanup()
    assert sandbox.is_alive()
    assert sandbox.run_code("mine == 'untouched'").text == "True"
    with pytest.raises(InvalidArgumentError, match="not both"):
        E2BToolsExecutor(sandbox=sandbox, config=SandboxConfig())


# -- what a CodeAgent run needs ---------------------------------------------------------
def test_tools_and_variables_are_sent_in(executor: E2BToolsExecutor, sandbox: Sandbox) -> None:
    executor.send_tools({"final_answer": FinalAnswerTool(), "sandbox_hostname": sandbox_hostname})
    hostname = sandbox.commands.run("hostname").stdout.strip()
    out = executor(f"sandbox_hostname('!') == {hostname + '!'!r}")
    assert out.output == "True"  # the tool ran in the sandbox
    executor.send_variables(
        {"rows": [{"a": 1}], "pair": (1, "x"), "tags": {"t"}, "payload": b"\x00\xff\xfe"}
    )
    kinds = executor("[type(v).__name__ for v in (rows, pair, tags, payload)], payload[1]")
    assert kinds.output == "(['list', 'tuple', 'set', 'bytes'], 255)"


def test_code_agent_runs_steps_in_the_sandbox(sandbox: Sandbox) -> None:
    model = ScriptedModel(
        [
            "Thought: look.\n<code>\nimport statistics\nm = statistics.mean(values)\n"
            "print('mean', m)\n</code>",
            "Thought: oops.\n<code>\nundefined_name + 1\n</code>",
            "Thought: answer.\n<code>\nfinal_answer(sandbox_hostname(f':{m * base}'))\n</code>",
        ]
    )
    executor = E2BToolsExecutor(sandbox=sandbox)
    with CodeAgent(
        tools=[sandbox_hostname], model=model, executor=executor, verbosity_level=LogLevel.OFF
    ) as agent:
        answer = agent.run("Mean times base.", additional_args={"values": [3, 5, 7], "base": 2})
        hostname = sandbox.commands.run("hostname").stdout.strip()
        assert answer == f"{hostname}:10"
        steps = agent.memory.steps
        assert "mean 5" in steps[1].observations
        assert "NameError: name 'undefined_name' is not defined" in str(steps[2].error)
    assert sandbox.is_alive()  # not the executor's to kill


def test_executor_type_is_not_pluggable_by_name() -> None:
    # smolagents 1.26 checks executor_type against its own fixed set: plug in with
    # executor= instead (docs/smolagents.md).
    with pytest.raises(ValueError, match="Unsupported executor type"):
        CodeAgent(tools=[], model=ScriptedModel([]), executor_type="e2b-tools")


# -- infrastructure failures reach the operator --------------------------------------
def test_no_engine_raises_engine_unavailable_at_creation(tmp_path: Path) -> None:
    # In a process of its own: the Docker SDK leaks the socket of a failed connection.
    script = (
        "from e2b_tools import EngineUnavailableError\n"
        "from e2b_tools_smolagents import E2BToolsExecutor\n"
        "try:\n    E2BToolsExecutor()\n"
        "except EngineUnavailableError as exc:\n    print('EngineUnavailableError', exc)\n"
    )
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "E2B_TOOLS_ENGINE_TIMEOUT": "3",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.startswith("EngineUnavailableError"), proc.stdout + proc.stderr
    assert "no-engine.sock" in proc.stdout


def test_sandbox_killed_mid_run_leaves_agent_run_as_the_error(image: str) -> None:
    executor = E2BToolsExecutor(timeout=120)
    sbx = executor.sandbox
    assert sbx is not None
    model = ScriptedModel(
        ["<code>\nimport time\ntime.sleep(60)\n</code>", "<code>\nfinal_answer(1)\n</code>"]
    )
    killer = threading.Timer(2.0, sbx.kill)
    with CodeAgent(tools=[], model=model, executor=executor, verbosity_level=LogLevel.OFF) as agent:
        killer.start()
        try:
            with pytest.raises(SandboxInfrastructureError) as info:
                agent.run("Wait a minute.")
        finally:
            killer.join()
    assert isinstance(info.value.error, SandboxGoneError)
    assert info.value.__cause__ is info.value.error
    assert model.calls == 1  # the model never saw it as text
    with pytest.raises(SandboxInfrastructureError):
        executor("1")  # cleaned up by the agent: still the operator's error
    assert_killed(sbx.sandbox_id)


class EngineGoesDown(DockerBackend):
    """The real engine, until ``down``: then every call to it fails as a dead engine's."""

    down = False

    def inspect(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any] | None:
        if self.down:
            raise EngineUnavailableError("the engine went away (test)", sandbox_id=sandbox_id)
        return super().inspect(container_id, sandbox_id)

    async def open_transport(self, container_id: str) -> Any:
        if self.down:
            raise EngineUnavailableError("the engine went away (test)")
        return await super().open_transport(container_id)


def test_engine_lost_mid_run_reaches_the_operator(
    image: str, docker_client: docker.DockerClient
) -> None:
    backend = EngineGoesDown()
    executor = E2BToolsExecutor(backend=backend, timeout=120)
    assert executor.sandbox is not None
    sandbox_id = executor.sandbox.sandbox_id

    def engine_dies() -> None:
        backend.down = True  # and with it the container: the stream breaks
        for container in docker_client.containers.list(
            filters={"label": f"{LABEL_SANDBOX}={sandbox_id}"}
        ):
            container.kill()

    model = ScriptedModel(["<code>\nimport time\ntime.sleep(60)\n</code>"])
    killer = threading.Timer(2.0, engine_dies)
    agent = CodeAgent(tools=[], model=model, executor=executor, verbosity_level=LogLevel.OFF)
    killer.start()
    try:
        with pytest.raises(SandboxInfrastructureError) as info:
            agent.run("Wait a minute.")
    finally:
        killer.join()
        backend.down = False
        agent.cleanup()
    assert isinstance(info.value.error, EngineUnavailableError)
    assert model.calls == 1
    assert_killed(sandbox_id)


# -- packages and the network policy --------------------------------------------------
def test_install_packages_offline(sandbox: Sandbox) -> None:
    ex = E2BToolsExecutor(["numpy", "numpy.linalg", "PIL", "*", "os.path"], sandbox=sandbox)
    assert ex.installed_packages == ["numpy", "numpy.linalg", "PIL", "*", "os.path"]
    with pytest.raises(PackageInstallError) as info:
        ex.install_packages(["tinypkg", "numpy"])
    assert info.value.packages == ["tinypkg"]
    assert "no network" in str(info.value) and "docs/network.md" in str(info.value)
    with pytest.raises(PackageInstallError, match="not package names"):
        ex.install_packages(["tinypkg; rm -rf ~"])
    ex.cleanup()


def test_install_packages_follows_the_network_policy(
    image: str, docker_client: docker.DockerClient
) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    from local_index import serve_local_index

    with serve_local_index(docker_client, image, aliases=["pypi.test"]) as index:
        envs = {"PIP_INDEX_URL": index.index_url, "PIP_TRUSTED_HOST": "pypi.test"}
        allowed = SandboxConfig(network={"allow_out": ["pypi.test"]}, envs=envs, timeout=300)
        with E2BToolsExecutor(["tinypkg"], config=allowed) as ex:
            assert ex.installed_packages == ["tinypkg"]
            assert ex("import tinypkg\ntinypkg.VALUE").output == "42"
        closed = SandboxConfig(network={"allow_out": ["other.test"]}, envs=envs, timeout=300)
        with pytest.raises(PackageInstallError) as info:
            E2BToolsExecutor(["tinypkg"], config=closed)
        assert "Blocked by the network policy: pypi.test:8080" in str(info.value)


# -- hostile steps -----------------------------------------------------------------
def test_huge_output_is_cut_for_the_model_and_saved_whole(sandbox: Sandbox) -> None:
    ex = E2BToolsExecutor(sandbox=sandbox, max_output_chars=10_000)
    out = ex("for i in range(300_000):\n    print('line', i)\ni")
    assert out.output == "299999"
    assert len(out.logs) < 10_600
    assert out.logs.startswith("line 0\nline 1\n") and out.logs.endswith("line 299999\n")
    assert "characters of output omitted" in out.logs
    path = out.logs.split("sandbox file ")[1].split(":")[0]
    lines = sandbox.commands.run(f"wc -l < {path}").stdout.strip()
    assert lines == "300000"
    ex.cleanup()


def test_step_timeout_keeps_state_or_says_it_was_lost(sandbox: Sandbox) -> None:
    ex = E2BToolsExecutor(sandbox=sandbox, step_timeout=2)
    ex("kept = 1")
    with pytest.raises(AgentError) as info:
        ex("import time\nprint('working')\ntime.sleep(30)")
    assert str(info.value).startswith("working\n")
    assert "step limit of 2s" in str(info.value) and "are kept" in str(info.value)
    assert ex("kept").output == "1"
    ex.send_tools({"final_answer": FinalAnswerTool()})
    ex.send_variables({"given": 41})
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(30)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    with pytest.raises(AgentError, match="had to be restarted"):
        ex(stubborn)
    with pytest.raises(AgentError, match="NameError"):
        ex("kept")
    assert ex("final_answer(given + 1)").output == 42  # tools and variables restored
    ex.cleanup()


def test_code_that_kills_its_python_process(sandbox: Sandbox) -> None:
    ex = E2BToolsExecutor(sandbox=sandbox)
    ex.send_tools({"final_answer": FinalAnswerTool()})
    ex.send_variables({"given": "v"})
    ex("temp = 1")
    with pytest.raises(AgentError) as info:
        ex("import os\nprint('bye')\nos._exit(3)")
    assert "ContextDied" in str(info.value) and "were defined again" in str(info.value)
    with pytest.raises(AgentError, match="NameError"):
        ex("temp")
    assert ex("final_answer(given * 2)").output == "vv"
    with pytest.raises(AgentError, match="ContextDied"):
        ex("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert ex("1 + 1").output == "2"
    ex.cleanup()


def test_binary_data_round_trips(executor: E2BToolsExecutor) -> None:
    blob = os.urandom(1 << 20)
    executor.send_variables({"blob": blob})
    digest = hashlib.sha256(blob).hexdigest()
    out = executor(f"import hashlib\nhashlib.sha256(blob).hexdigest() == {digest!r}")
    assert out.output == "True"
    # Far past the 64 Ki characters an exception message keeps in the sandbox.
    answer = executor("final_answer(blob[:300_000])")
    assert answer.is_final_answer and answer.output == blob[:300_000]
    printed = executor("import sys\nsys.stdout.buffer.write(bytes(range(256)))\nsys.stdout.flush()")
    assert printed.is_final_answer is False  # undecodable bytes do not break the step


# -- the example -----------------------------------------------------------------------
def test_example_runs_offline_and_leaves_no_container(image: str, tmp_path: Path) -> None:
    out = run_example("smolagents_agent.py", tmp_path)
    assert "[step 1] printed: 4 readings, mean 21.50" in out
    assert "[step 2] error shown to the model: NameError: name 'reading' is not defined" in out
    assert "agent answer: mean 70.7 F, spread 3.5 C" in out
    assert "sandbox killed: no container left" in out
    sandbox_id = out.split("sandbox ", 1)[1].split()[0]
    assert_killed(sandbox_id)


def test_public_api_and_docs_page() -> None:
    import e2b_tools_smolagents

    names = e2b_tools_smolagents.__all__
    assert set(names) == {
        "E2BToolsExecutor",
        "INFRASTRUCTURE_ERRORS",
        "PackageInstallError",
        "SandboxInfrastructureError",
    }
    assert all(getattr(e2b_tools_smolagents, name).__doc__ for name in names if name[0] != "I")
    assert issubclass(SandboxInfrastructureError, BaseException)
    assert not issubclass(SandboxInfrastructureError, Exception)  # CodeAgent catches those
    page = (ROOT / "docs" / "smolagents.md").read_text()
    assert "pip install 'e2b-tools[smolagents]'" in page
    for name in names:
        assert name in page, name
