"""The in-sandbox agent (standard library only; runs inside the container).

Inside a sandbox this package is importable as ``e2b_tools_agent``; see
:mod:`e2b_tools._bundle` for how it gets there.
"""
