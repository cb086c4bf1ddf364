"""What the YAML loader refuses to read (issue 19): documents nested too deep (libyaml and the
pure-Python loaders alike), alias cycles and bombs, resources over 1.5 MiB, oversized and
special files. Each is one problem naming the file and document; its neighbours load."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from controlplane.sources import yaml_compat, yaml_loader
from controlplane.sources.yaml_loader import load_file, load_yaml


def config_map(name: str, data: str = "{a: b}") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {data}\n"


def flow_nested(levels: int) -> str:
    return config_map("deep", "{a: " + "[" * levels + "]" * levels + "}")


def block_nested(levels: int) -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: deep}", "data:"]
    lines += ["  " * (i + 1) + "a:" for i in range(levels)]
    return "\n".join(lines) + "\n" + "  " * (levels + 1) + "b: c\n"


def names(result: yaml_loader.LoadResult) -> list[str]:
    return [d.body["metadata"]["name"] for d in result.documents]


PURE_PYTHON = getattr(yaml_compat, "DepthLimitedSafeLoader", yaml.SafeLoader)


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The loader used first: libyaml where the wheel has it, PyYAML's own otherwise."""
    if request.param == "pure-python":
        monkeypatch.setattr(yaml_loader, "_Loader", PURE_PYTHON)
    return str(request.param)


@pytest.mark.parametrize(
    "deep", [flow_nested(400), flow_nested(1_000), flow_nested(20_000), block_nested(1_000)],
    ids=["flow-400", "flow-1000", "flow-20000", "block-1000"],
)
def test_a_deep_document_is_one_problem_and_its_neighbours_load(loader: str, deep: str) -> None:
    text = config_map("before") + "---\n" + deep + "---\n" + config_map("after")
    result = load_yaml(text, "deep.yaml")
    assert names(result) == ["before", "after"]
    [problem] = result.problems
    assert problem.origin.file == "deep.yaml"
    assert problem.origin.line >= 6  # in the second document, not the first
    assert problem.message == "document 2: nested more than 100 levels deep"


def test_nesting_real_config_uses_is_read(loader: str) -> None:
    # 100 levels in all: the root mapping, data, a, then 97 lists.
    result = load_yaml(flow_nested(97), "ok.yaml")
    assert names(result) == ["deep"] and not result.problems


def test_an_alias_cycle_is_refused_not_followed(loader: str) -> None:
    text = config_map("cycle", "{a: &x [*x]}") + "---\n" + config_map("after")
    result = load_yaml(text, "cycle.yaml")
    assert names(result) == ["after"]
    assert [p.message for p in result.problems] == ["document 1: nested more than 100 levels deep"]


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    text = config_map("bomb", "{}") + "\n".join(lines) + "\n---\n" + config_map("after")
    result = load_yaml(text, "bomb.yaml")
    assert names(result) == ["after"]
    [problem] = result.problems
    assert problem.message.startswith("document 1: more than 1,000,000 nodes")


def test_a_resource_over_etcds_limit_is_refused_before_parsing() -> None:
    big = config_map("big", '{a: "' + "x" * (3 * 1024 * 1024 // 2) + '"}')
    result = load_yaml(config_map("before") + "---\n" + big, "big.yaml")
    assert names(result) == ["before"]
    [problem] = result.problems
    assert problem.origin.line == 5  # its "---"
    assert problem.message == (
        "document 2: 1,572,935 bytes: a resource may have at most 1,572,864 (1.5 MiB, etcd's"
        " request limit in Kubernetes)"
    )


def test_a_list_may_be_larger_than_one_resource_but_not_its_items() -> None:
    items = [config_map(f"item{i}", '{a: "' + "y" * 600_000 + '"}') for i in range(3)]
    items.insert(1, config_map("huge", '{a: "' + "z" * 1_600_000 + '"}'))
    body = "".join("- " + item.replace("\n", "\n  ").rstrip() + "\n" for item in items)
    result = load_yaml("apiVersion: v1\nkind: List\nitems:\n" + body, "list.yaml")
    assert names(result) == ["item0", "item1", "item2"]
    [problem] = result.problems
    assert problem.message.startswith("document 1, item at line 8: 1,600,07")


def test_an_oversized_file_is_not_read(tmp_path: Path) -> None:
    from controlplane.sources.limits import YamlLimits

    path = tmp_path / "big.yaml"
    path.write_text(config_map("a") * 3)
    result = load_file(path, limits=YamlLimits(max_file_bytes=100))
    assert not result.documents
    [problem] = result.problems
    assert problem.origin.file == str(path)
    size = path.stat().st_size
    assert problem.message.startswith(f"file of {size:,} bytes not read: at most 100 ")
    assert problem.message.endswith("per file; split it into several files")


def test_a_fifo_is_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    done: list[yaml_loader.LoadResult] = []
    reader = threading.Thread(target=lambda: done.append(load_file(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    try:
        assert done, "reading a FIFO blocked"
        assert [p.message for p in done[0].problems] == ["cannot read file: not a regular file"]
    finally:
        if reader.is_alive():  # unblock the reader of the old code
            with open(fifo, "w"):
                pass


def test_only_small_documents_get_the_slow_second_reading() -> None:
    # libyaml rejects this go-yaml spelling; PyYAML's pure-Python reader (~3 s per MiB)
    # accepts it, for documents small enough that the folder does not wait on it.
    go_only = "x: [1.2.3.4, 2001:db8::]\n"
    small = load_yaml(config_map("small") + go_only, "small.yaml")
    assert names(small) == ["small"] and not small.problems
    big = load_yaml(config_map("big", '{a: "' + "y" * 300_000 + '"}') + go_only, "big.yaml")
    [problem] = big.problems
    assert problem.message == (
        "invalid YAML: found unexpected ':' (a document over 256 KiB is not read again as go-yaml"
        " would)"
    )
