# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Structural edits of a YAML document that leave every byte they do not need to change alone.

PRIVATE to the collection. Runs on masters, where only the standard library and PyYAML can be counted on,
so there is no round-trip YAML library: the document is composed with PyYAML, whose nodes know where they
start and end in the text, and each edit becomes a text patch at that place (a scalar replaced, sequence
items or mapping keys inserted with the indentation of their neighbours, or removed with their lines).
Comments, key order, quoting and blank lines elsewhere are kept. Flow-style collections ([...], {...}, JSON)
are re-rendered as JSON where they change.

Every edit is also applied to a plain data copy, and render() re-parses the patched text and refuses it
unless it loads to exactly that data: the text patches can never produce anything but the intended document.
"""

from __future__ import annotations

import json
import traceback
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._module import Library

_YAML_IMPORT_ERROR: t.Optional[str] = None
try:
    import yaml
except ImportError:  # TkeKmsModule reports the missing library (libraries=[PYYAML])
    yaml = None  # type: ignore[assignment]
    _YAML_IMPORT_ERROR = traceback.format_exc()

PYYAML = Library("PyYAML", _YAML_IMPORT_ERROR)

_STR_TAG = "tag:yaml.org,2002:str"
_END = "end"  # anchor of text appended after the last original item of a sequence


class YamlEditError(TkeKmsError):
    """The document cannot be read or edited as asked."""


def syntax_error_message(what: str, exc: Exception) -> str:
    """'<what> is not valid YAML (line L, column C)': where the error is, never what is there.

    PyYAML's own message quotes the offending line, which may hold key material (an aescbc secret, a
    kubeconfig token), so only the position it found is reported.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return "%s is not valid YAML" % what
    return "%s is not valid YAML (line %d, column %d)" % (what, mark.line + 1, mark.column + 1)


class Ref:
    """A place in the document: its original node (None for content an edit added) and its live data."""

    __slots__ = ("flow_root", "node", "value")

    def __init__(self, node: t.Any, value: t.Any, flow_root: t.Optional[Ref]) -> None:
        self.node = node
        self.value = value
        self.flow_root = flow_root


class _SequenceState:
    """Where the items of an edited block sequence came from: an original node, or None when inserted."""

    def __init__(self, node: t.Any, data: t.List[t.Any]) -> None:
        self.node = node
        self.data = data
        self.origin: t.List[t.Any] = list(node.value)
        self.removed: t.List[t.Any] = []  # original item nodes, whose lines go


class _MappingState:
    def __init__(self, node: t.Any, data: t.Dict[t.Any, t.Any]) -> None:
        self.node = node
        self.data = data
        self.new_keys: t.List[t.Any] = []
        self.removed: t.List[t.Tuple[t.Any, t.Any]] = []  # original (key node, value node) pairs


def load_single_document(text: str, what: str) -> t.Tuple[t.Any, t.Any]:
    """Compose and load a one-document YAML text; YamlEditError names the line of a syntax error."""
    if yaml is None:
        raise YamlEditError("PyYAML is required")
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise YamlEditError(syntax_error_message(what, exc)) from None
    if len(nodes) != 1:
        raise YamlEditError("%s must hold exactly one YAML document, found %d" % (what, len(nodes)))
    return nodes[0], documents[0]


def render_scalar(value: t.Any, style: t.Optional[str] = None) -> str:
    """A scalar as it would appear after 'key: ' in block context, in the given quoting style if possible."""
    if isinstance(value, str) and "\n" not in value:
        if style == '"':
            return json.dumps(value, ensure_ascii=False)
        if style == "'":
            return "'%s'" % value.replace("'", "''")
    dumped = yaml.safe_dump({"k": value}, default_flow_style=False, allow_unicode=True, width=2**30)
    return dumped[len("k: ") :].rstrip("\n")


def block_lines(value: t.Any) -> t.List[str]:
    """The block-style YAML lines of a value, without indentation (a scalar is one line)."""
    if not isinstance(value, (dict, list)) or not value:
        return [render_scalar(value) if not isinstance(value, (dict, list)) else json.dumps(value)]
    dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True, width=2**30)
    return dumped.rstrip("\n").split("\n")


def open_editor(text: str, what: str, error: t.Type[TkeKmsError]) -> "YamlEditor":
    """A YamlEditor of text; a document it cannot read raises the caller's error class (same message)."""
    try:
        return YamlEditor(text, what)
    except YamlEditError as exc:
        raise error(str(exc)) from exc


class YamlEditor:
    """Edits one YAML document; read .data, change it through the methods, then render()."""

    def __init__(self, text: str, what: str = "the document") -> None:
        self.original = text
        self.what = what
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self._root_node, self.data = load_single_document(text, what)
        self._scalar_patches: t.Dict[int, t.Tuple[t.Any, str]] = {}
        self._sequences: t.Dict[int, _SequenceState] = {}
        self._mappings: t.Dict[int, _MappingState] = {}
        self._flow_roots: t.Dict[int, Ref] = {}
        self._depth: t.Dict[int, int] = {}
        self._index_depths(self._root_node, 0)

    def _index_depths(self, node: t.Any, depth: int) -> None:
        self._depth[id(node)] = depth
        if isinstance(node, yaml.MappingNode):
            for _key, value in node.value:
                self._index_depths(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self._index_depths(item, depth + 1)

    # navigation -------------------------------------------------------------------------------------------

    @property
    def root(self) -> Ref:
        return self._ref(self._root_node, self.data, None)

    def _ref(self, node: t.Any, value: t.Any, flow_root: t.Optional[Ref]) -> Ref:
        ref = Ref(node, value, flow_root)
        if flow_root is None and node is not None and getattr(node, "flow_style", False):
            ref.flow_root = ref
        return ref

    def get(self, parent: Ref, key: t.Any) -> t.Optional[Ref]:
        """The child of a mapping (by key) or sequence (by current index); None if missing."""
        container = parent.value
        if isinstance(container, dict):
            if key not in container:
                return None
            node = self._mapping_value_node(parent, key)
        elif isinstance(container, list):
            if not isinstance(key, int) or not -len(container) <= key < len(container):
                return None
            key = key % len(container)
            node = self._sequence_item_node(parent, key)
        else:
            return None
        return self._ref(node, container[key], parent.flow_root)

    def items(self, sequence: Ref) -> t.List[Ref]:
        return [t.cast(Ref, self.get(sequence, index)) for index in range(len(sequence.value))]

    def _mapping_value_node(self, mapping: Ref, key: t.Any) -> t.Any:
        return self._mapping_pair(mapping, key)[1]

    def _mapping_pair(self, mapping: Ref, key: t.Any) -> t.Tuple[t.Any, t.Any]:
        if mapping.node is None or not isinstance(mapping.node, yaml.MappingNode):
            return None, None
        found = (None, None)
        for key_node, value_node in mapping.node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR_TAG and key_node.value == key:
                found = (key_node, value_node)  # the last one wins, as when loading
        return found

    def _sequence_item_node(self, sequence: Ref, index: int) -> t.Any:
        if sequence.node is None or not isinstance(sequence.node, yaml.SequenceNode):
            return None
        state = self._sequences.get(id(sequence.node))
        if state is not None:
            return state.origin[index]
        return sequence.node.value[index] if index < len(sequence.node.value) else None

    # edits ------------------------------------------------------------------------------------------------

    def set_scalar(self, parent: Ref, key: t.Any, value: t.Any) -> None:
        """Replace the scalar at parent[key] (which must exist) with another scalar."""
        child = self.get(parent, key)
        if child is None:
            raise YamlEditError("internal error: no %r to replace in %s" % (key, self.what))
        parent.value[key] = value
        if self._mark_flow_change(parent):
            return
        node = child.node
        if node is None:
            return
        if not isinstance(node, yaml.ScalarNode) or node.style in ("|", ">"):
            raise YamlEditError(
                "%s: cannot replace the non-plain value at line %d" % (self.what, node.start_mark.line + 1)
            )
        self._scalar_patches[id(node)] = (node, render_scalar(value, node.style))

    def insert_item(self, sequence: Ref, index: int, value: t.Any) -> Ref:
        """Insert value into a sequence before the item now at index (index == len appends)."""
        sequence.value.insert(index, value)
        if not self._mark_flow_change(sequence) and sequence.node is not None:
            state = self._sequences.setdefault(
                id(sequence.node), _SequenceState(sequence.node, sequence.value)
            )
            state.origin.insert(index, None)
        return Ref(None, value, sequence.flow_root)

    def set_key(self, mapping: Ref, key: str, value: t.Any) -> Ref:
        """Set mapping[key]: a new key is added after the last one; an existing scalar is replaced."""
        if key in mapping.value:
            current = mapping.value[key]
            if isinstance(current, (dict, list)) or isinstance(value, (dict, list)):
                raise YamlEditError(
                    "internal error: set_key only replaces scalars (%r in %s)" % (key, self.what)
                )
            self.set_scalar(mapping, key, value)
            return t.cast(Ref, self.get(mapping, key))
        mapping.value[key] = value
        if not self._mark_flow_change(mapping) and mapping.node is not None:
            state = self._mappings.setdefault(id(mapping.node), _MappingState(mapping.node, mapping.value))
            state.new_keys.append(key)
        return Ref(None, value, mapping.flow_root)

    def remove_item(self, sequence: Ref, index: int) -> None:
        """Remove the item at index from a sequence, with the lines it takes."""
        if not isinstance(sequence.value, list) or not 0 <= index < len(sequence.value):
            raise YamlEditError("internal error: no item %r to remove in %s" % (index, self.what))
        del sequence.value[index]
        if self._mark_flow_change(sequence) or sequence.node is None:
            return
        state = self._sequences.setdefault(id(sequence.node), _SequenceState(sequence.node, sequence.value))
        origin = state.origin.pop(index)
        if origin is not None:
            self._forget(origin)
            state.removed.append(origin)

    def remove_key(self, mapping: Ref, key: t.Any) -> None:
        """Remove a key (and its value) from a mapping, with the lines they take; a missing key is fine."""
        if not isinstance(mapping.value, dict) or key not in mapping.value:
            return
        del mapping.value[key]
        if self._mark_flow_change(mapping) or mapping.node is None:
            return
        state = self._mappings.setdefault(id(mapping.node), _MappingState(mapping.node, mapping.value))
        if key in state.new_keys:
            state.new_keys.remove(key)
            return
        key_node, value_node = self._mapping_pair(mapping, key)
        self._forget(value_node)
        state.removed.append((key_node, value_node))

    def _forget(self, node: t.Any) -> None:
        """Drop the pending edits inside a node whose text goes away."""
        self._scalar_patches.pop(id(node), None)
        self._sequences.pop(id(node), None)
        self._mappings.pop(id(node), None)
        self._flow_roots.pop(id(node), None)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                self._forget(key_node)
                self._forget(value_node)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self._forget(item)

    def _mark_flow_change(self, ref: Ref) -> bool:
        if ref.flow_root is None:
            return False
        if ref.flow_root.node is not None:
            self._flow_roots[id(ref.flow_root.node)] = ref.flow_root
        return True

    @property
    def changed(self) -> bool:
        return bool(self._scalar_patches or self._sequences or self._mappings or self._flow_roots)

    # rendering --------------------------------------------------------------------------------------------

    def render(self) -> str:
        """The edited text; YamlEditError if it would not load to exactly .data."""
        if not self.changed:
            return self.original
        # (start, end, -depth, text): at one offset, text for a deeper node must come first (items appended to
        # a mapping's last sequence before a key appended to that mapping), so it is applied last.
        patches: t.List[t.Tuple[int, int, int, str]] = []
        for node, text in self._scalar_patches.values():
            patches.append((node.start_mark.index, node.end_mark.index, 0, text))
        for state in self._sequences.values():
            depth = -self._depth[id(state.node)]
            patches.extend((start, end, depth, text) for start, end, text in self._sequence_patches(state))
        for mstate in self._mappings.values():
            depth = -self._depth[id(mstate.node)]
            patches.extend((start, end, depth, text) for start, end, text in self._mapping_patches(mstate))
        for ref in self._flow_roots.values():
            text = json.dumps(
                ref.value, ensure_ascii=False, indent=2 if ref.node is self._root_node else None
            )
            patches.append((ref.node.start_mark.index, ref.node.end_mark.index, 0, text))
        text = self.original
        # Later places first, so the offsets of earlier ones stay valid.
        for start, end, _depth, replacement in sorted(patches, reverse=True):
            text = text[:start] + replacement + text[end:]
        _node, reloaded = load_single_document(text, self.what + " (as edited)")
        if reloaded != self.data:
            raise YamlEditError("%s: the text edit did not give the intended document" % self.what)
        return text

    def _line_start(self, index: int) -> int:
        return self.original.rfind("\n", 0, index) + 1

    def _after_line(self, node: t.Any) -> t.Tuple[int, str]:
        """The offset just after the line where node's content ends, and a newline to prepend if at EOF."""
        last = node
        while isinstance(last, (yaml.MappingNode, yaml.SequenceNode)) and not last.flow_style and last.value:
            last = last.value[-1][1] if isinstance(last, yaml.MappingNode) else last.value[-1]
        end = last.end_mark.index
        if isinstance(last, yaml.ScalarNode) and last.style in ("|", ">") and self._line_start(end) == end:
            return end, ""  # a block scalar ends at the start of the line after its content
        newline_at = self.original.find("\n", end)
        if newline_at < 0:
            return len(self.original), self.newline
        return newline_at + 1, ""

    def _dash_columns(self, item_node: t.Any) -> t.Tuple[int, int]:
        """(column of the '-', column of the item's content) of an original block sequence item."""
        start = item_node.start_mark.index
        prefix = self.original[self._line_start(start) : start]
        dash = prefix.rfind("-")
        if dash < 0:
            raise YamlEditError(
                "%s: unexpected layout at line %d" % (self.what, item_node.start_mark.line + 1)
            )
        return dash, item_node.start_mark.column

    def _removal(self, first: t.Any, last: t.Any, lead: str) -> t.Tuple[int, int, str]:
        """A patch deleting the whole lines from node first to node last; only `lead` ('-' or '') and
        spaces may stand before first on its line."""
        at = self._line_start(first.start_mark.index)
        if self.original[at : first.start_mark.index].strip() != lead:
            raise YamlEditError(
                "%s: cannot remove the lines at line %d" % (self.what, first.start_mark.line + 1)
            )
        return at, self._after_line(last)[0], ""

    def _sequence_patches(self, state: _SequenceState) -> t.List[t.Tuple[int, int, str]]:
        patches = [self._removal(node, node, "-") for node in state.removed]
        originals = [node for node in state.origin if node is not None]
        if all(node is not None for node in state.origin):
            return patches
        dash_col, item_col = self._dash_columns((originals or state.removed)[0])
        pending: t.List[str] = []
        by_anchor: t.List[t.Tuple[t.Any, t.List[str]]] = []
        for index, origin in enumerate(state.origin):
            value = state.data[index]
            if origin is None:
                pending.extend(self._item_lines(value, dash_col, item_col))
            elif pending:
                by_anchor.append((origin, pending))
                pending = []
        if pending:
            by_anchor.append((_END, pending))
        for anchor, lines in by_anchor:
            text = "".join(line + self.newline for line in lines)
            if anchor is _END:
                if not originals:
                    raise YamlEditError("%s: cannot replace every item of a sequence in place" % self.what)
                at, prefix = self._after_line(originals[-1])
                patches.append((at, at, prefix + text))
                continue
            at = self._line_start(anchor.start_mark.index)
            if self.original[at : anchor.start_mark.index].strip() != "-":
                raise YamlEditError(
                    "%s: cannot insert before line %d" % (self.what, anchor.start_mark.line + 1)
                )
            patches.append((at, at, text))
        return patches

    @staticmethod
    def _item_lines(value: t.Any, dash_col: int, item_col: int) -> t.List[str]:
        lines = block_lines(value)
        first = " " * dash_col + "-" + " " * (item_col - dash_col - 1) + lines[0]
        return [first] + [" " * item_col + line for line in lines[1:]]

    def _mapping_patches(self, state: _MappingState) -> t.List[t.Tuple[int, int, str]]:
        node = state.node
        patches = [self._removal(key_node, value_node, "") for key_node, value_node in state.removed]
        if not state.new_keys:
            return patches
        key_col = node.value[0][0].start_mark.column if node.value else 0
        lines: t.List[str] = []
        for key in state.new_keys:
            lines.extend(" " * key_col + line for line in block_lines({key: state.data[key]}))
        at, prefix = self._after_line(node)
        patches.append((at, at, prefix + "".join(line + self.newline for line in lines)))
        return patches
