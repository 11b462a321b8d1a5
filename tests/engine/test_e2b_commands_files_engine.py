"""E2B's commands and files API in a real container: what the local backend cannot
show (the sandbox user's names, its environment, the refusal of root)."""

from __future__ import annotations

import pytest

from e2b_tools import FileType, InvalidArgumentException, Sandbox


def test_e2b_env_user_and_owner_names(sandbox: Sandbox, image: str) -> None:
    out = sandbox.commands.run('echo "$E2B_SANDBOX $E2B_SANDBOX_ID"').stdout.split()
    assert out == ["true", sandbox.sandbox_id]
    with pytest.raises(InvalidArgumentException, match="root"):
        sandbox.commands.run("id -u", user="root")
    assert sandbox.commands.run("id -u", user="user").stdout.strip() != "0"
    info = sandbox.files.write("owned.txt", "x")
    entry = sandbox.files.get_info(info.path)
    assert entry.uid == 1000 and entry.owner == "user" and entry.group
    root = sandbox.files.get_info("/etc/hostname")
    assert root.owner == "root" and root.group == "root"
    sandbox.commands.run("ln -sf owned.txt link")
    link = sandbox.files.get_info("link")
    assert link.type == FileType.FILE and link.symlink_target == entry.path
