"""A LangChain agent installs a package in a sandbox that may reach only its index.

The sandbox's network policy allows one host, the package index; everything else gets a
``403`` from the egress proxy that names why, and the proxy's decision log shows what
was allowed and denied. By default the example serves its own index
(``examples/local_index.py``, in a container on a network of its own, with one package,
``tinypkg``), so it runs offline; set ``E2B_TOOLS_INDEX_URL`` to use another index (its
host is then the one allowed).

Offline (the default) a scripted chat model plays the model's part, issuing the tool
calls a model would; the tools run for real in the sandbox. With ``OPENAI_API_KEY`` set
the loop uses ``langchain_openai.ChatOpenAI`` (``pip install langchain-openai``;
``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` are honoured).

Run: ``python examples/langchain_install.py``
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
from langchain_agent import ScriptedChatModel, real_model, run_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from local_index import serve_local_index

from e2b_tools import NetworkPolicy, SandboxConfig
from e2b_tools.images import DEFAULT_IMAGE
from e2b_tools_langchain import SandboxToolkit

PACKAGE = "tinypkg"
DENIED_URL = "http://denied.test:8080/"
QUESTION = (
    f"Install the Python package {PACKAGE} with pip in the sandbox, import it and tell me "
    f"{PACKAGE}.VALUE. Then try `curl {DENIED_URL}` there and tell me what happened."
)


def scripted_model() -> BaseChatModel:
    def call(name: str, args: dict[str, str], call_id: str) -> AIMessage:
        return AIMessage(
            content="",
            tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}],
        )

    script = [
        call("run_shell", {"command": f"pip install {PACKAGE}"}, "c1"),
        call("run_code", {"code": f"import {PACKAGE}\n{PACKAGE}.VALUE"}, "c2"),
        call("run_shell", {"command": f"curl -sS -w 'HTTP %{{http_code}}\\n' {DENIED_URL}"}, "c3"),
        AIMessage(
            content=f"{PACKAGE} installed from the allowed index and imports fine: "
            f"{PACKAGE}.VALUE is 42. The request to denied.test was refused by the "
            "sandbox's network policy (HTTP 403: it matches no allow_out rule)."
        ),
    ]
    return ScriptedChatModel(messages=iter(script))


@contextlib.contextmanager
def package_index() -> Iterator[str]:
    """The index URL: ``E2B_TOOLS_INDEX_URL``, else a local one served for the run."""
    url = os.environ.get("E2B_TOOLS_INDEX_URL")
    if url:
        yield url
        return
    client = docker.from_env()
    try:
        # denied.test is the same server under a name the policy does not allow.
        with serve_local_index(client, DEFAULT_IMAGE, aliases=["pypi.test", "denied.test"]) as idx:
            print(f"serving a local index at {idx.index_url} (network {idx.network})")
            yield idx.index_url
    finally:
        client.close()


def main() -> int:
    model = real_model() if os.environ.get("OPENAI_API_KEY") else scripted_model()
    with package_index() as index_url:
        host = urlsplit(index_url).hostname or ""
        config = SandboxConfig(
            network=NetworkPolicy(allow_out=[host]),
            envs={"PIP_INDEX_URL": index_url, "PIP_TRUSTED_HOST": host},
        )
        print(f"sandbox network: allow_out={[host]}")
        with SandboxToolkit(budget=2000, config=config) as toolkit:
            answer = run_agent(model, toolkit, QUESTION)
            print(f"\nagent answer: {answer}")
            session = toolkit.core.session
            sbx = session.sandbox
            if sbx is None:
                print("\n(the agent called no tool, so no sandbox was started)")
                return 0
            print("\nnetwork log (the egress proxy's decisions for this sandbox):")
            for d in session.call_sync(sbx.network_log()):
                verdict = "allowed" if d.allowed else "denied "
                print(f"  {verdict} {d.method} {d.host}:{d.port} rule={d.rule!r}: {d.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
