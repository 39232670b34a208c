"""The in-place YAML editor: edits land where they belong, everything else stays byte for byte."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import YamlEditError, YamlEditor


def edit(text: str) -> YamlEditor:
    return YamlEditor(textwrap.dedent(text))


def test_unchanged_document_renders_identically() -> None:
    source = "a: 1  # one\n\n# two\nb: [x, y]\n"
    assert YamlEditor(source).render() == source


def test_scalar_replacement_keeps_quoting_and_comments() -> None:
    editor = edit("""\
        args:
        - "--x=1"   # double
        - '--y=2'   # single
        - --z=3     # plain
        """)
    args = editor.get(editor.root, "args")
    editor.set_scalar(args, 0, "--x=10")
    editor.set_scalar(args, 1, "--y=it's")
    editor.set_scalar(args, 2, "--z=30")
    assert editor.render() == textwrap.dedent("""\
        args:
        - "--x=10"   # double
        - '--y=it''s'   # single
        - --z=30     # plain
        """)


def test_plain_scalar_that_would_change_type_is_quoted() -> None:
    editor = edit("a:\n  b: x\n")
    editor.set_scalar(editor.get(editor.root, "a"), "b", "0123")
    assert editor.render() == "a:\n  b: '0123'\n"
    assert yaml.safe_load(editor.render())["a"]["b"] == "0123"


def test_insert_into_block_sequence_before_an_item_and_at_the_end() -> None:
    editor = edit("""\
        spec:
          items:
            - b   # keep
            - d
          other: 1
        """)
    items = editor.get(editor.get(editor.root, "spec"), "items")
    editor.insert_item(items, 0, "a")
    editor.insert_item(items, 2, "c")
    editor.insert_item(items, 4, "e")
    editor.insert_item(items, 5, "f")
    assert editor.render() == textwrap.dedent("""\
        spec:
          items:
            - a
            - b   # keep
            - c
            - d
            - e
            - f
          other: 1
        """)


def test_insert_mapping_items_with_indentless_dashes() -> None:
    editor = edit("""\
        volumes:
        - hostPath:
            path: /a
          name: a
        status: {}
        """)
    editor.insert_item(
        editor.get(editor.root, "volumes"), 1, {"hostPath": {"path": "/b", "type": "File"}, "name": "b"}
    )
    assert editor.render() == textwrap.dedent("""\
        volumes:
        - hostPath:
            path: /a
          name: a
        - hostPath:
            path: /b
            type: File
          name: b
        status: {}
        """)


def test_new_keys_go_after_the_last_key_with_its_indentation() -> None:
    editor = edit("""\
        metadata:
          name: x   # trailing
        # between
        spec: 1
        """)
    metadata = editor.get(editor.root, "metadata")
    annotations = editor.set_key(metadata, "annotations", {})
    editor.set_key(annotations, "k", "v")
    editor.set_key(editor.root, "status", {})
    assert editor.render() == textwrap.dedent("""\
        metadata:
          name: x   # trailing
          annotations:
            k: v
        # between
        spec: 1
        status: {}
        """)


def test_items_appended_to_a_last_sequence_come_before_a_key_appended_to_its_mapping() -> None:
    editor = edit("""\
        c:
          list:
          - a
        """)
    c = editor.get(editor.root, "c")
    editor.insert_item(editor.get(c, "list"), 1, "b")
    editor.set_key(c, "z", 1)
    assert editor.render() == "c:\n  list:\n  - a\n  - b\n  z: 1\n"


def test_flow_collections_are_rerendered_as_json() -> None:
    editor = edit("""\
        a: [x, y]  # flow
        b: {k: v}
        c: []
        """)
    editor.insert_item(editor.get(editor.root, "a"), 2, "z")
    editor.set_key(editor.get(editor.root, "b"), "n", 1)
    editor.insert_item(editor.get(editor.root, "c"), 0, {"m": True})
    assert editor.render() == textwrap.dedent("""\
        a: ["x", "y", "z"]  # flow
        b: {"k": "v", "n": 1}
        c: [{"m": true}]
        """)


def test_a_json_document_stays_json() -> None:
    editor = YamlEditor('{"a": {"b": [1]}}\n')
    editor.insert_item(editor.get(editor.get(editor.root, "a"), "b"), 1, 2)
    rendered = editor.render()
    assert rendered.endswith("}\n")
    assert yaml.safe_load(rendered) == {"a": {"b": [1, 2]}}
    assert rendered.lstrip().startswith("{")


def test_crlf_line_endings_are_kept() -> None:
    editor = YamlEditor("a:\r\n- x\r\nb: 1\r\n")
    editor.insert_item(editor.get(editor.root, "a"), 1, "y")
    assert editor.render() == "a:\r\n- x\r\n- y\r\nb: 1\r\n"


def test_missing_final_newline() -> None:
    editor = YamlEditor("a:\n- x")
    editor.insert_item(editor.get(editor.root, "a"), 1, "y")
    assert editor.render() == "a:\n- x\n- y\n"


def test_key_after_a_block_scalar() -> None:
    editor = YamlEditor("m:\n  text: |\n    line one\n    line two\nn: 1\n")
    editor.set_key(editor.get(editor.root, "m"), "k", "v")
    assert editor.render() == "m:\n  text: |\n    line one\n    line two\n  k: v\nn: 1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1\n", "is not valid YAML"),
        ("a: 1\n---\nb: 2\n", "exactly one YAML document"),
        ("", "exactly one YAML document"),
    ],
)
def test_unreadable_documents(text: str, message: str) -> None:
    with pytest.raises(YamlEditError, match=message):
        YamlEditor(text)


def test_a_patch_that_does_not_give_the_intended_data_is_refused() -> None:
    editor = YamlEditor("a:\n- x\n")
    editor.insert_item(editor.get(editor.root, "a"), 1, "y")
    editor.data["a"].append("not in the text")  # the data no longer matches what the patches produce
    with pytest.raises(YamlEditError, match="did not give the intended document"):
        editor.render()


def test_a_syntax_error_is_reported_by_position_never_by_content() -> None:
    text = "spec:\n  containers:\n  - env:\n    - {name: TOKEN, value: s3cr3t-t0ken: oops}\n"
    with pytest.raises(YamlEditError) as raised:
        YamlEditor(text, "/etc/kubernetes/manifests/kube-apiserver.yaml")
    assert str(raised.value) == (
        "/etc/kubernetes/manifests/kube-apiserver.yaml is not valid YAML (line 4, column 40)"
    )
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
