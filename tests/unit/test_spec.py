"""Unit tests for convoy.spec: loading, validating and expanding experiment files."""

from __future__ import annotations

import pytest

from convoy.errors import SpecError
from convoy.spec import (
    BuildSpec,
    ExperimentSpec,
    PlacementSpec,
    Resources,
    expand,
    load_spec,
    parse_duration,
    parse_memory,
)

FULL = r"""name: aloha
image: convoy/python:3.11
sources: .
command: ./aloha -c ${config} -r ${rep}
matrix:
  config: [PureAloha1, PureAloha2]
  rep: {range: [0, 10]}
resources: {cpus: 1, memory: 512MiB}
env: {OMP_NUM_THREADS: "1"}
outputs: [results/]
retries: 1
timeout: 30m
network: none
progress: '\((?P<percent>\d+)%\)'
"""

HEAD = "name: exp\nimage: img\n"


def load(text: str) -> ExperimentSpec:
    return load_spec(text, "exp.yaml")


def error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(text)
    assert info.value.file == "exp.yaml"
    return info.value


def test_full_example_loads_every_field() -> None:
    spec = load(FULL)
    assert spec.name == "aloha"
    assert spec.image == "convoy/python:3.11"
    assert spec.command == "./aloha -c ${config} -r ${rep}"
    assert spec.matrix == (("config", ("PureAloha1", "PureAloha2")), ("rep", range(10)))
    assert spec.resources == Resources(cpus=1.0, memory_bytes=512 * 1024**2, gpus=0)
    assert spec.env == (("OMP_NUM_THREADS", "1"),)
    assert spec.outputs == ("results",)  # normalised, as sources is
    assert spec.retries == 1
    assert spec.timeout_seconds == 1800.0
    assert spec.network == "none"
    assert spec.sources == "."
    assert spec.progress == r"\((?P<percent>\d+)%\)"
    assert spec.file == "exp.yaml"


def test_full_example_expands_to_20_runs_with_last_param_fastest() -> None:
    runs = expand(load(FULL))
    assert len(runs) == 20
    assert [r.index for r in runs] == list(range(20))
    assert runs[0].params == {"config": "PureAloha1", "rep": 0}
    assert runs[1].params == {"config": "PureAloha1", "rep": 1}
    assert runs[10].params == {"config": "PureAloha2", "rep": 0}
    assert runs[19].command == "./aloha -c PureAloha2 -r 9"
    assert runs[0].env == {"OMP_NUM_THREADS": "1"}


def test_minimal_spec_uses_defaults() -> None:
    spec = load(HEAD + "command: echo hi\n")
    assert spec.resources == Resources()
    assert (spec.retries, spec.timeout_seconds, spec.network, spec.sources) == (0, 0.0, "none", ".")
    assert spec.matrix == () and spec.env == () and spec.outputs == () and spec.progress is None


def test_no_matrix_expands_to_exactly_one_run_with_empty_params() -> None:
    runs = expand(load(HEAD + "command: echo hi\n"))
    assert len(runs) == 1
    assert runs[0].index == 0 and runs[0].params == {} and runs[0].command == "echo hi"


def test_matrix_accepts_list_scalar_and_range_values() -> None:
    spec = load(
        HEAD + "command: x\nmatrix:\n  a: [1, 2.5, true, s]\n  b: only\n  c: {range: [2, 4]}\n"
    )
    assert spec.matrix == (("a", (1, 2.5, True, "s")), ("b", ("only",)), ("c", range(2, 4)))
    assert list(spec.matrix[2][1]) == [2, 3]


def test_range_with_step_follows_python_range() -> None:
    spec = load(HEAD + "command: x\nmatrix:\n  r: {range: [10, 0, -3]}\n")
    assert [(n, list(v)) for n, v in spec.matrix] == [("r", [10, 7, 4, 1])]


def test_empty_range_is_an_error_at_the_range_list() -> None:
    e = error(HEAD + "command: x\nmatrix:\n  r: {range: [5, 5]}\n")
    assert (e.line, e.column) == (5, 14)
    assert "matrix.r.range" in e.message and "empty" in e.message


def test_range_of_non_integers_says_what_was_expected() -> None:
    e = error(HEAD + "command: x\nmatrix:\n  r: {range: [0, 1.5]}\n")
    assert e.message == "matrix.r.range: expected [start, stop] or [start, stop, step] of integers"


def test_expansion_is_the_cartesian_product_in_file_order() -> None:
    spec = load(HEAD + "command: x\nmatrix:\n  b: [1, 2]\n  a: [x, y, z]\n")
    pairs = [(r.params["b"], r.params["a"]) for r in expand(spec)]
    assert pairs == [(1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z")]
    assert list(expand(spec)[0].params) == ["b", "a"]


def test_shell_command_substitution_is_shell_quoted() -> None:
    spec = load(
        HEAD + 'command: run --name ${x} --flag ${f}\nmatrix:\n  x: ["a b", plain]\n  f: [on]\n'
    )
    runs = expand(spec)
    assert runs[0].command == "run --name 'a b' --flag true"
    assert runs[1].command == "run --name plain --flag true"


def test_argv_and_env_substitution_is_verbatim() -> None:
    text = HEAD + 'command:\n  - run\n  - --name=${x}\nenv:\n  X: "${x}!"\nmatrix:\n  x: ["a b"]\n'
    run = expand(load(text))[0]
    assert run.command == ("run", "--name=a b")
    assert run.env == {"X": "a b!"}


def test_argv_scalars_keep_their_written_text() -> None:
    spec = load(HEAD + "command: [sleep, 010, 1.50, true]\n")
    assert spec.command == ("sleep", "010", "1.50", "true")


def test_double_dollar_escapes_a_literal_reference() -> None:
    spec = load(HEAD + "command: echo $${HOME} ${x} $PATH\nmatrix:\n  x: [1]\n")
    assert expand(spec)[0].command == "echo ${HOME} 1 $PATH"


def test_unknown_reference_in_command_is_an_error_at_the_command_node() -> None:
    e = error(HEAD + "command: run ${confg}\nmatrix:\n  config: [a]\n")
    assert (e.line, e.column) == (3, 10)
    assert "'${confg}' is not a matrix parameter" in e.message
    assert "did you mean '${config}'?" in e.message


def test_unknown_reference_in_env_is_an_error_at_the_env_value() -> None:
    e = error(HEAD + "command: x\nenv:\n  A: ok\n  B: ${nope}\n")
    assert (e.line, e.column) == (6, 6)
    assert e.message.startswith("env.B: '${nope}' is not a matrix parameter")


def test_yaml_syntax_error_reports_the_problem_position() -> None:
    e = error(HEAD + "command: [a, b\nretries: 1\n")
    assert (e.line, e.column) == (4, 8)
    assert e.message.startswith("invalid YAML:")
    assert "expected ',' or ']'" in e.message


def test_wrong_type_for_cpus_names_the_field_and_value() -> None:
    e = error(HEAD + "command: x\nresources:\n  cpus: two\n")
    assert (e.line, e.column) == (5, 9)
    assert e.message == "resources.cpus: expected a positive number, got 'two'"
    assert str(e) == "exp.yaml:5:9: resources.cpus: expected a positive number, got 'two'"


def test_unknown_field_suggests_the_closest_name() -> None:
    e = error("name: exp\nimage: img\ncomand: x\n")
    assert (e.line, e.column) == (3, 1)
    assert e.message == "unknown field 'comand' (did you mean 'command'?)"


def test_unknown_resources_field_is_an_error() -> None:
    e = error(HEAD + "command: x\nresources: {cpus: 1, memroy: 1G}\n")
    assert "unknown field 'memroy'" in e.message and "did you mean 'memory'?" in e.message


def test_missing_required_field_points_at_the_top_level_mapping() -> None:
    e = error("# comment\nname: exp\ncommand: x\n")
    assert (e.line, e.column) == (2, 1)
    assert e.message == "missing required field 'image'"


def test_duplicate_key_is_an_error_at_the_second_key() -> None:
    e = error(HEAD + "command: x\nenv:\n  A: 1\n  A: 2\n")
    assert (e.line, e.column) == (6, 3)
    assert "duplicate key 'A'" in e.message


def test_empty_file_is_an_error_at_line_1_column_1() -> None:
    e = error("# nothing here\n")
    assert (e.line, e.column) == (1, 1)
    assert "expected a mapping of experiment fields" in e.message


def test_non_mapping_top_level_is_an_error() -> None:
    e = error("- a\n- b\n")
    assert "expected a mapping of experiment fields" in e.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MiB", 512 * 1024**2),
        ("1G", 1024**3),
        ("1GB", 10**9),
        ("1gib", 1024**3),
        ("2048", 2048),
        (2048, 2048),
        ("4 KiB", 4096),
        ("1.5K", 1536),
    ],
)
def test_parse_memory_understands_units(text: str | int, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["0", 0, -5, "12 parsecs", "", True, 1.5, None])
def test_parse_memory_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a memory size"):
        parse_memory(bad)


def test_bad_memory_in_spec_is_an_error_at_the_value() -> None:
    e = error(HEAD + "command: x\nresources:\n  memory: lots\n")
    assert (e.line, e.column) == (5, 11)
    assert e.message.startswith("resources.memory: expected a memory size")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("45", 45)],
)
def test_parse_duration_understands_units(value: str, expected: float) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("bad", ["", "0s", "1x", "30m1h", 0, -1, True, None])
def test_parse_duration_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def test_numeric_timeout_is_seconds() -> None:
    assert load(HEAD + "command: x\ntimeout: 2.5\n").timeout_seconds == 2.5


def test_output_with_dotdot_is_rejected() -> None:
    e = error(HEAD + "command: x\noutputs:\n  - results/\n  - a/../../etc\n")
    assert (e.line, e.column) == (6, 5)
    assert "outputs[1]" in e.message and "'..'" in e.message


def test_absolute_sources_is_rejected() -> None:
    e = error(HEAD + "command: x\nsources: /etc\n")
    assert e.message.startswith("sources: expected a relative path")


def test_bad_name_explains_the_allowed_form() -> None:
    e = error("name: My Experiment\nimage: img\ncommand: x\n")
    assert (e.line, e.column) == (1, 7)
    assert "directory names" in e.message and "'My Experiment'" in e.message


def test_progress_regex_without_percent_group_is_rejected() -> None:
    e = error(HEAD + r"command: x" + "\n" + r"progress: '(\d+)%'" + "\n")
    assert (e.line, e.column) == (4, 11)
    assert "(?P<percent>" in e.message


def test_progress_regex_that_does_not_compile_reports_the_regex_error() -> None:
    e = error(HEAD + "command: x\nprogress: '(?P<percent>'\n")
    assert e.message.startswith("progress: invalid regular expression:")


def test_build_as_a_command_or_a_mapping() -> None:
    """`build: make` is a command; a mapping may set its own image, resources and timeout."""
    spec = load(HEAD + "command: x\nbuild: make -j2\n")
    assert spec.build == BuildSpec(command="make -j2")
    spec = load(
        HEAD + "command: x\nbuild:\n  command: [make, all]\n  image: convoy/gcc:12\n"
        "  resources: {cpus: 2}\n  timeout: 10m\n  once: host\n"
    )
    assert spec.build == BuildSpec(
        command=("make", "all"), image="convoy/gcc:12", resources=Resources(cpus=2.0),
        timeout_seconds=600.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "where", "message"),
    [
        ("build:\n  image: x\n", (6, 3), "build: missing required field 'command'"),
        ("build:\n  command: make\n  imag: y\n", (7, 3),
         "unknown field 'imag' in build (did you mean 'image'?)"),
        ("build: make N=${n}\n", (5, 8), "build: '${n}': a build runs once for all the runs of a "
         "revision, so it cannot use matrix parameters (write '$${' for a literal '${')"),
        ("build:\n  command: make\n  once: cluster\n", (7, 9), "build.once: 'cluster' (build "
         "on one host, ship the output to the others) is not supported yet; use 'host'"),
        ("build:\n  command: make\n  resources: {cpus: 0}\n", (7, 21),
         "build.resources.cpus: expected a positive number, got 0"),
    ],
)  # fmt: skip
def test_bad_build_is_an_error_at_its_place(
    tail: str, where: tuple[int, int], message: str
) -> None:
    e = error(HEAD + "command: x\nmatrix: {n: [1, 2]}\n" + tail)
    assert ((e.line, e.column), e.message) == (where, message)


def test_inputs_name_folders_to_mount_read_only() -> None:
    """`inputs` maps names to folders, kept in file order."""
    spec = load(HEAD + "command: x\ninputs:\n  traces: ../data/traces\n  maps: /srv/maps\n")
    assert spec.inputs == (("traces", "../data/traces"), ("maps", "/srv/maps"))


def test_input_with_a_bad_name_is_an_error_at_its_key() -> None:
    """An input name must be usable as a folder name under /inputs."""
    e = error(HEAD + "command: x\ninputs:\n  Bad Name: x\n")
    assert (e.line, e.column) == (5, 3)
    assert e.message.startswith("inputs: expected an input name")


def test_env_values_become_strings_with_lowercase_bools() -> None:
    spec = load(HEAD + "command: x\nenv:\n  A: 1\n  B: yes\n  C: text\n")
    assert spec.env == (("A", "1"), ("B", "true"), ("C", "text"))


def test_bad_env_name_is_rejected() -> None:
    e = error(HEAD + "command: x\nenv:\n  1BAD: x\n")
    assert e.message.startswith("env: expected a variable name")


def test_empty_matrix_list_is_rejected() -> None:
    e = error(HEAD + "command: x\nmatrix:\n  a: []\n")
    assert e.message == "matrix.a: expected a non-empty list of values"


def test_nested_matrix_value_is_rejected() -> None:
    e = error(HEAD + "command: x\nmatrix:\n  a: [1, [2]]\n")
    assert (e.line, e.column) == (5, 10)
    assert "got a list" in e.message


def test_negative_retries_and_gpus_are_rejected() -> None:
    assert "retries: expected an integer >= 0" in error(HEAD + "command: x\nretries: -1\n").message
    e = error(HEAD + "command: x\nresources: {gpus: 1.5}\n")
    assert e.message == "resources.gpus: expected an integer >= 0, got 1.5"


def test_network_accepts_named_networks_and_rejects_bad_names() -> None:
    assert load(HEAD + "command: x\nnetwork: my-net_1\n").network == "my-net_1"
    assert "network: expected" in error(HEAD + "command: x\nnetwork: 'bad net'\n").message


def test_empty_command_list_is_rejected() -> None:
    e = error(HEAD + "command: []\n")
    assert e.message.startswith("command: expected a shell command (string) or a non-empty list")


# ---- placement -------------------------------------------------------------------------------


def test_placement_names_hosts_and_labels_as_written() -> None:
    text = "command: x\nplacement:\n  hosts: [h1, h2]\n  labels: {gpu: a100, ib: true}\n"
    spec = load(HEAD + text)
    assert spec.placement == PlacementSpec(("h1", "h2"), (("gpu", "a100"), ("ib", "true")))
    assert str(spec.placement) == "hosts h1, h2; labels gpu=a100, ib=true"
    assert load(HEAD + "command: x\n").placement == PlacementSpec()
    spread = load(HEAD + "command: x\nplacement: {policy: spread}\n").placement
    assert (spread.policy, spread.restricts) == ("spread", False)


def test_placement_allows_hosts_named_and_carrying_every_label() -> None:
    by_label = PlacementSpec(labels=(("gpu", "a100"), ("rack", "2")))
    assert by_label.allows("any", {"gpu": "a100", "rack": "2", "os": "debian"})
    assert not by_label.allows("any", {"gpu": "a100"})
    assert not by_label.allows("any", {"gpu": "v100", "rack": "2"})
    named = PlacementSpec(hosts=("h2",))
    assert named.allows("h2", {}) and not named.allows("h1", {})
    assert PlacementSpec().allows("whatever", {})


HOSTS = "placement.hosts: expected a non-empty list of host names"


@pytest.mark.parametrize(
    ("placement", "where", "message"),
    [
        ("{hosts: []}", (4, 20), f"{HOSTS}, got a list"),
        ("{hosts: h1}", (4, 20), f"{HOSTS}, got 'h1'"),
        ("{hosts: [h1, h1]}", (4, 25), "placement.hosts: duplicate host 'h1'"),
        ("{labels: {gpu: [a, b]}}", (4, 27),
         "placement.labels.gpu: expected a string, number or boolean, got a list"),
        ("{labels: [gpu]}", (4, 21), "placement.labels: expected a mapping, got a list"),
        ("{lables: {gpu: a}}", (4, 13),
         "unknown field 'lables' in placement (did you mean 'labels'?)"),
        ("[h1]", (4, 12), "placement: expected a mapping, got a list"),
        ("{policy: fill}", (4, 21), "placement.policy: expected 'pack' (fill hosts in name "
         "order) or 'spread' (the emptiest host first), got 'fill'"),
    ],
)  # fmt: skip
def test_bad_placement_is_an_error_where_it_is_written(
    placement: str, where: tuple[int, int], message: str
) -> None:
    e = error(HEAD + f"command: x\nplacement: {placement}\n")
    assert ((e.line, e.column), e.message) == (where, message)


@pytest.mark.parametrize("value", ["!!bool nope", "!!bool ''", "!!int x", "!!float y"])
def test_a_typed_scalar_that_is_not_of_its_type_is_an_error_at_the_value(value: str) -> None:
    """An explicit YAML tag the value does not fit (`!!bool nope` raised a KeyError inside
    the YAML library) is a SpecError at the value, like any other bad value."""
    e = error(HEAD + f"command: x\nretries: {value}\n")
    assert (e.line, e.column) == (4, 10)
    assert e.message.startswith("cannot read ")
