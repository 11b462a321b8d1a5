"""The main job: an agent-style session in a real sandbox, narrated step by step.

Run with `make demo` (installs, starts the engine and builds the image if needed) or
`python examples/demo.py` once those are in place. The chart lands in ./out/.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

from e2b_tools import CommandExitError, Sandbox

OUT = Path(__file__).resolve().parent.parent / "out"


def step(n: int, title: str) -> None:
    print(f"\n[{n}] {title}")


def show(label: str, text: str) -> None:
    body = textwrap.indent(text.rstrip() or "(nothing)", "      ")
    print(f"    {label}:\n{body}")


def main() -> int:
    started = time.perf_counter()
    step(1, "Create a sandbox (network off, read-only root, 1 CPU, 1 GiB, non-root)")
    with Sandbox.create(timeout=300, metadata={"job": "demo"}) as sbx:
        print(f"    sandbox {sbx.sandbox_id} ready in {time.perf_counter() - started:.2f}s")

        step(2, "Run Python; state persists across calls")
        sbx.run_code("import statistics\nprices = [12.5, 13.1, 12.9, 14.2, 15.0]")
        execution = sbx.run_code("round(statistics.mean(prices), 2)")
        show("mean of the prices defined in the previous call", execution.text or "")

        step(3, "An error comes back as data, not as an exception")
        execution = sbx.run_code("prices[10]")
        assert execution.error is not None
        show("error", f"{execution.error.name}: {execution.error.value}")

        step(4, "Write a CSV file, then read it back from code")
        sbx.files.write("data/sales.csv", "month,sales\nJan,120\nFeb,135\nMar,160\nApr,155\n")
        execution = sbx.run_code(
            "import pandas as pd\ndf = pd.read_csv('data/sales.csv')\n"
            "print(df.describe().loc[['mean', 'max']])\nlen(df)"
        )
        show("stdout", "".join(execution.logs.stdout))
        show("rows", execution.text or "")

        step(5, "Run shell commands")
        result = sbx.commands.run("ls -l data && wc -l data/sales.csv && whoami")
        show("stdout", result.stdout)
        try:
            sbx.commands.run("grep -q Dec data/sales.csv")
        except CommandExitError as exc:
            show("a failing command raises, keeping its result", f"exit code {exc.exit_code}")

        step(6, "Make a matplotlib chart inside the sandbox and copy it out")
        execution = sbx.run_code(
            "import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots(figsize=(5, 3))\n"
            "ax.bar(df['month'], df['sales'], color='#3b7dd8')\n"
            "ax.set_title('Sales by month')\n"
            "fig.tight_layout()\n"
            "fig.savefig('chart.png', dpi=100)\n"
            "'saved'",
            timeout=120,
        )
        if execution.error:
            show("chart failed", execution.error.traceback)
            return 1
        OUT.mkdir(exist_ok=True)
        local = sbx.files.download("chart.png", OUT / "chart.png")
        print(f"    chart.png: {local.stat().st_size} bytes copied to {local}")

        step(7, "A runaway loop stops at its timeout; the sandbox keeps going")
        try:
            sbx.run_code("while True: pass", timeout=2)
        except TimeoutError as exc:
            print(f"    {type(exc).__name__}: {exc}")
        show("after the timeout", sbx.run_code("len(prices)").text or "")

    step(8, "Done: the sandbox was removed when the `with` block ended")
    print(f"    total {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
