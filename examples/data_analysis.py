"""CSV in, chart out: the tool calls an analyst agent makes, on a real sandbox.

Offline (the default) the calls are scripted, in the order a model would make them.
With ``OPENAI_API_KEY`` set, a real model drives the same tools through the
AutoGPT-style loop of ``autogpt_loop.py``. The chart is copied to ``out/sales.png``.

Run: ``python examples/data_analysis.py``
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

from e2b_tools.tools import Toolkit

OUT = Path(__file__).resolve().parent.parent / "out"

CSV = """region,month,sales
north,2026-01,120
north,2026-02,135
north,2026-03,160
south,2026-01,90
south,2026-02,95
south,2026-03,140
"""

STEPS: list[tuple[str, dict[str, object]]] = [
    ("write_file", {"path": "data/sales.csv", "content": CSV}),
    ("list_files", {"path": "data"}),
    (
        "run_code",
        {
            "code": (
                "import pandas as pd\n"
                "df = pd.read_csv('data/sales.csv')\n"
                "summary = df.groupby('region').sales.agg(['sum', 'mean'])\n"
                "print(summary)\n"
                "summary['sum'].idxmax()"
            )
        },
    ),
    (
        "run_code",
        {
            "code": (
                "import matplotlib.pyplot as plt\n"
                "pivot = df.pivot(index='month', columns='region', values='sales')\n"
                "ax = pivot.plot(marker='o', title='Sales by region')\n"
                "ax.set_ylabel('units')\n"
                "plt.tight_layout()\n"
                "plt.savefig('sales.png', dpi=100)\n"
                "'chart saved'"
            )
        },
    ),
    ("read_file", {"path": "sales.png"}),
]


def scripted(toolkit: Toolkit) -> bytes | None:
    chart = None
    for name, args in STEPS:
        output = toolkit.get(name).run(args)
        status = "error" if output.is_error else "ok"
        print(f"[{name}] {status}")
        print("    " + output.text.replace("\n", "\n    "))
        if output.is_error:
            raise SystemExit(f"{name} failed")
        for artifact in output.artifacts:
            chart = base64.b64decode(artifact.data)
    return chart


def with_model(toolkit: Toolkit) -> bytes | None:
    from autogpt_loop import run_loop
    from openai import OpenAI

    from e2b_tools_autogpt import ToolDispatcher

    toolkit.get("write_file").run(path="data/sales.csv", content=CSV)
    tools = ToolDispatcher(toolkit)
    answer = run_loop(
        OpenAI(),
        tools,
        "data/sales.csv has monthly sales per region. Summarise it, then plot sales by "
        "region over months to sales.png and read it back with read_file.",
        os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    )
    print(f"model: {answer}")
    images = [a for a in tools.artifacts if a.mime_type == "image/png"]
    return base64.b64decode(images[-1].data) if images else None


def main() -> int:
    with Toolkit(budget=2000) as toolkit:
        chart = with_model(toolkit) if os.environ.get("OPENAI_API_KEY") else scripted(toolkit)
    if chart is None:
        print("no chart was produced")
        return 1
    OUT.mkdir(exist_ok=True)
    (OUT / "sales.png").write_bytes(chart)
    print(f"\nchart: {OUT / 'sales.png'} ({len(chart)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
