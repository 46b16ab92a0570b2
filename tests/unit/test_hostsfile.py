"""The hosts file: validation with file:line:column, dumping, adding and removing hosts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from convoy.coordinator.hosts.hostsfile import (
    DEFAULT_AGENT_HOME,
    HostConfig,
    add_host,
    add_host_text,
    dump_hosts,
    format_memory,
    load_hosts,
    read_hosts,
    remove_host,
    remove_host_text,
)
from convoy.errors import NotFound, SpecError, UsageError

GOOD = textwrap.dedent("""\
    # the lab's machines
    hosts:
      - name: lab1                # first
        address: lab1.example.org
        port: 2222
        user: alice
        identity: ~/.ssh/id_ed25519
        labels: {gpu: a100, fast: true, rack: 7}
        cpus: 16
        memory: 64GiB
        python: /opt/py/bin/python3
        agent_home: /scratch/convoy
        docker_host: unix:///run/user/1000/docker.sock

      # an ssh_config alias: port and user come from ~/.ssh/config
      - name: lab2
        address: lab2
""")


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as err:
        load_hosts(textwrap.dedent(text), "hosts.yaml")
    return err.value


def test_good_file_gives_every_field() -> None:
    """Every field of a good file is read, and fields left out keep their defaults."""
    lab1, lab2 = load_hosts(GOOD, "hosts.yaml")
    assert lab1 == HostConfig(
        name="lab1", address="lab1.example.org", port=2222, user="alice",
        identity="~/.ssh/id_ed25519", labels={"gpu": "a100", "fast": "true", "rack": "7"},
        cpus=16.0, memory=64 * 1024**3, python="/opt/py/bin/python3", agent_home="/scratch/convoy",
        docker_host="unix:///run/user/1000/docker.sock",
    )  # fmt: skip
    assert lab2 == HostConfig(name="lab2", address="lab2")
    assert (lab2.port, lab2.user, lab2.python, lab2.agent_home) == (
        None, None, "python3", DEFAULT_AGENT_HOME,
    )  # fmt: skip


def test_empty_files_have_no_hosts() -> None:
    """An empty file, `hosts:` and `hosts: []` all mean no hosts."""
    assert load_hosts("") == load_hosts("hosts:\n") == load_hosts("hosts: []\n") == []


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("hosts:\n  - name: a\n    adress: x\n", 3, 5,
         "unknown field 'adress' in hosts[0] (did you mean 'address'?)"),
        ("hosts:\n  - {name: a, address: x}\n  - {name: b, address: y}\n"
         "  - {name: a, address: z}\n", 4, 12,
         "hosts[2].name: duplicate host name 'a' (first defined on line 2)"),
        ("hosts:\n  - name: Lab_1\n    address: x\n", 2, 11,
         "hosts[0].name: expected a host name of lowercase letters"),
        ("hosts:\n  - name: local\n    address: x\n", 2, 11,
         "hosts[0].name: 'local' is this machine's own agent"),
        ("hosts:\n  - name: a\n    address: x\n    port: 70000\n", 4, 11,
         "hosts[0].port: expected a port number from 1 to 65535, got 70000"),
        ("hosts:\n  - name: a\n    address: x\n    port: '22'\n", 4, 11,
         "hosts[0].port: expected a port number from 1 to 65535, got '22'"),
        ("hosts:\n  - name: a\n    address: x\n    memory: 12 parsecs\n", 4, 13,
         "hosts[0].memory: expected a memory size > 0 such as 2048 (bytes), '512MiB'"),
        ("hosts:\n  - name: a\n    address: x\n    memory: 0\n", 4, 13,
         "hosts[0].memory: expected a memory size > 0"),
        ("hosts:\n  - name: a\n    address: x\n    cpus: -1\n", 4, 11,
         "hosts[0].cpus: expected a positive number, got -1"),
        ("hosts:\n  - name: a\n", 2, 5, "hosts[0]: missing required field 'address'"),
        ("hosts:\n  - name: a\n    address: two words\n", 3, 14,
         "hosts[0].address: expected a host name, IP address or ssh_config Host alias"),
        ("hosts:\n  - name: a\n    address: x\n    docker_host: /var/run/docker.sock\n", 4, 18,
         "hosts[0].docker_host: expected a Docker engine URL"),
        ("hosts:\n  - name: a\n    address: x\n    labels: [gpu]\n", 4, 13,
         "hosts[0].labels: expected a mapping, got a list"),
        ("host:\n  - name: a\n", 1, 1, "unknown field 'host' (did you mean 'hosts'?)"),
        ("hosts: {name: a}\n", 1, 8, "hosts: expected a list of hosts, got a mapping"),
        ("- name: a\n", 1, 1, "expected a mapping with a 'hosts' list, got a list"),
        ("hosts:\n  - name: a\n    address: [x\n", 4, 1, "invalid YAML"),
    ],
)  # fmt: skip
def test_each_error_names_its_line_and_column(
    text: str, line: int, column: int, message: str
) -> None:
    """Each problem is reported at the offending node, with what was expected."""
    e = error_of(text)
    assert (e.file, e.line, e.column) == ("hosts.yaml", line, column), str(e)
    assert e.message.startswith(message), e.message


def test_dump_reads_back_the_same_hosts() -> None:
    """dump_hosts writes a file that load_hosts reads back as the same hosts."""
    hosts = load_hosts(GOOD)
    text = dump_hosts(hosts)
    assert load_hosts(text) == hosts
    assert "memory: 64GiB" in text and "python: python3" not in text


def test_format_memory_uses_the_largest_exact_unit() -> None:
    """Memory is written in the largest binary unit that divides it exactly."""
    assert [format_memory(n) for n in (64 * 1024**3, 1536 * 1024**2, 1000)] == [
        "64GiB", "1536MiB", "1000",
    ]  # fmt: skip


def test_add_then_remove_round_trips_and_keeps_comments() -> None:
    """Adding a host and removing it again gives back the original file, comments included."""
    new = HostConfig(name="lab3", address="10.0.0.3", user="bob", cpus=4.0, labels={"x": "1"})
    added = add_host_text(GOOD, new, "hosts.yaml")
    assert load_hosts(added) == [*load_hosts(GOOD), new]
    assert "# an ssh_config alias" in added and "# first" in added
    assert remove_host_text(added, "lab3") == GOOD


def test_remove_keeps_the_other_hosts_and_comments() -> None:
    """Removing a host in the middle keeps the others and the comments around them."""
    text = add_host_text(GOOD, HostConfig(name="lab3", address="c"))
    out = remove_host_text(text, "lab2")
    assert [h.name for h in load_hosts(out)] == ["lab1", "lab3"]
    assert out.startswith("# the lab's machines\n") and "# first" in out


def test_removing_the_last_host_leaves_an_empty_list_that_takes_new_hosts() -> None:
    """A file emptied by remove reads as no hosts, and add works on it again."""
    text = add_host_text("", HostConfig(name="a", address="b"))
    empty = remove_host_text(text, "a")
    assert load_hosts(empty) == []
    assert load_hosts(add_host_text(empty, HostConfig(name="c", address="d"))) == [
        HostConfig(name="c", address="d")
    ]


def test_add_to_a_flow_style_list() -> None:
    """A flow-style hosts list is rewritten in block style with the new host appended."""
    out = add_host_text("hosts: [{name: q, address: r}]\n", HostConfig(name="a", address="b"))
    assert [h.name for h in load_hosts(out)] == ["q", "a"]


def test_add_refuses_a_taken_name_and_remove_an_unknown_one() -> None:
    """A duplicate name is refused on add; an unknown name on remove."""
    with pytest.raises(UsageError, match="'lab1' already exists"):
        add_host_text(GOOD, HostConfig(name="lab1", address="x"))
    with pytest.raises(NotFound, match="no host named 'nope'"):
        remove_host_text(GOOD, "nope")


def test_add_and_remove_edit_the_file(tmp_path: Path) -> None:
    """add_host creates the file when missing; remove_host edits it in place."""
    path = tmp_path / "hosts.yaml"
    assert read_hosts(path) == []
    add_host(path, HostConfig(name="a", address="b", port=2200))
    add_host(path, HostConfig(name="c", address="d"))
    assert [h.name for h in read_hosts(path)] == ["a", "c"]
    remove_host(path, "a")
    assert read_hosts(path) == [HostConfig(name="c", address="d")]
    with pytest.raises(NotFound):
        remove_host(tmp_path / "missing.yaml", "a")


def test_hosts_add_reads_labels_as_the_files_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--label ib=yes` is stored as the label `ib: yes` in a hosts file or a placement reads
    (true), so a placement asking for it matches; a malformed label exits 2, writing nothing."""
    from convoy.cli.main import main
    from convoy.spec import PlacementSpec, load_spec

    monkeypatch.setenv("CONVOY_HOME", str(tmp_path / "home"))
    path = tmp_path / "hosts.yaml"
    args = ["hosts", "add", "a", "10.0.0.9", "--file", str(path)]
    assert main([*args, "--label", "ib=yes", "--label", "rack=7", "--label", "os=off"]) == 0
    (host,) = read_hosts(path)
    assert host.labels == {"ib": "true", "rack": "7", "os": "false"}
    spec = load_spec(
        "name: x\nimage: i\ncommand: c\nplacement:\n  labels: {ib: yes, rack: 7}\n", "x.yaml"
    )
    assert isinstance(spec.placement, PlacementSpec)
    assert spec.placement.allows("a", host.labels)
    before = path.read_text()
    for bad in ("ib", "=yes", "a b=1", "ib="):
        assert main(["hosts", "add", "b", "10.0.0.8", "--file", str(path), "--label", bad]) == 2
        assert f"--label '{bad}': expected KEY=VALUE" in capsys.readouterr().err
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["local", "x"], "host 'local': name: 'local' is this machine's own agent"),
        (["Bad_Name", "x"], "host 'Bad_Name': name: expected a host name of lowercase"),
        (["a", "x", "--port", "70000"], "host 'a': port: expected a port number from 1 to"),
        (["a", "x", "--cpus", "-1"], "host 'a': cpus: expected a positive number, got -1"),
        (["a", "x", "--memory", "bogus"], "--memory: expected a memory size"),
    ],
)  # fmt: skip
def test_hosts_add_refuses_what_the_file_could_not_load(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A host `convoy up` could not load is refused (exit 2) saying why, the file untouched:
    it was written, and the next `convoy up` or `hosts add` failed on it."""
    from convoy.cli.main import main

    monkeypatch.setenv("CONVOY_HOME", str(tmp_path / "home"))
    path = tmp_path / "hosts.yaml"
    path.write_text(GOOD)
    assert main(["hosts", "add", *args, "--file", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert path.read_text() == GOOD
