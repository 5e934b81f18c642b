"""The children of every rollout as the operator last saw them, so a rollout's reconcile reads no
list of its children.

A rollout with N children (the end of every rollout, and each later template over the same fleet)
used to list all N as whole objects, status included, on each of its reconciles: some 4-5 KB a
child, once a second while children change. The operator already watches every
DatabaseMigration; each event of a child (``rollout_handlers.on_child_event``) and each object the
rollout itself creates, patches or annotates (the API server's response) is reduced at once to a
``Child`` and kept here under its rollout. A reconcile reads its children from here.

Two rules keep it as right as a fresh list:

- **Newer wins.** An entry is replaced only by an object of a newer ``resourceVersion`` (compared as
  numbers, as etcd writes them; a version that is not a number is taken as newer). So the answer
  of the rollout's own create or patch is not undone by a watch event about the object before it,
  and a child the rollout has just created counts against ``maxParallel`` before the watch
  delivers it. A deleted child is kept as deleted until the next full list, so an older object
  (a list that began before the deletion) does not bring it back.
- **A full list now and then.** The first reconcile of a rollout in this process, and any after
  ``RESYNC_SECONDS``, lists its children once (paged) and replaces its entries with them, keeping
  only an entry the watch has seen newer. That fills the index before the watch has delivered
  every child (an operator that just started), and drops a child whose deletion the watch missed
  while it reconnected. Between, a reconcile costs no list of its children at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dbmigrate import API_GROUP
from dbmigrate.api.rollout import ROLLOUT_KIND
from dbmigrate.decision.rollout import Child, observe_child

RESYNC_SECONDS = 600.0
Key = tuple[str, str]  # (namespace, rollout name)


@dataclass(frozen=True)
class _Entry:
    owner_uid: str
    version: str
    child: Child | None  # None: deleted (kept so that an older object does not bring it back)


def rollout_owner(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the rollout owning an object, from its ownerReferences; None if none."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == ROLLOUT_KIND and str(ref.get("apiVersion", "")).startswith(API_GROUP):
            return str(ref.get("name", "")), str(ref.get("uid", ""))
    return None


def newer(version: str, than: str) -> bool:
    """Whether resourceVersion ``version`` is newer than ``than`` (numbers, as etcd writes
    them; anything else is taken as newer, so the latest object wins)."""
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return version != than


class ChildIndex:
    """Each rollout's children, reduced to ``Child``, fed by the watch and the rollout's writes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Key, dict[str, _Entry]] = {}
        self._listed_at: dict[Key, float] = {}

    def seen(self, obj: Mapping[str, Any], *, deleted: bool = False) -> Key | None:
        """Keep (or, ``deleted``, forget) a child from a watch event or an API answer; the key
        of its rollout, or None when the object is not a rollout's child."""
        meta = obj.get("metadata") or {}
        owner = rollout_owner(meta)
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if owner is None or not namespace or not name:
            return None
        key = (namespace, owner[0])
        version = str(meta.get("resourceVersion", ""))
        with self._lock:
            children = self._entries.setdefault(key, {})
            current = children.get(name)
            if current is not None and not newer(version, current.version):
                return key
            child = None if deleted else observe_child(obj)
            children[name] = _Entry(owner[1], version, child)
        return key

    def needs_list(self, key: Key) -> bool:
        """Whether the rollout's children must be listed now (never yet, or not for a while)."""
        with self._lock:
            listed = self._listed_at.get(key)
        return listed is None or self._clock() - listed >= RESYNC_SECONDS

    def replace(self, key: Key, items: Iterable[Mapping[str, Any]]) -> None:
        """Take a full list of the rollout's children as its entries (an entry the watch has seen
        newer than the listed object stays)."""
        listed: dict[str, _Entry] = {}
        for item in items:
            meta = item.get("metadata") or {}
            owner = rollout_owner(meta)
            if owner is not None:
                version = str(meta.get("resourceVersion", ""))
                listed[str(meta.get("name", ""))] = _Entry(owner[1], version, observe_child(item))
        with self._lock:
            for name, entry in self._entries.get(key, {}).items():
                if name in listed and newer(entry.version, listed[name].version):
                    listed[name] = entry
            self._entries[key] = {n: e for n, e in listed.items() if e.child is not None}
            self._listed_at[key] = self._clock()

    def children(self, key: Key, owner_uid: str) -> tuple[Child, ...]:
        """The children of rollout ``key`` owned by the rollout of uid ``owner_uid``."""
        with self._lock:
            entries = list(self._entries.get(key, {}).values())
        return tuple(e.child for e in entries if e.child is not None and e.owner_uid == owner_uid)

    def forget(self, key: Key) -> None:
        """Drop a rollout that is gone."""
        with self._lock:
            self._entries.pop(key, None)
            self._listed_at.pop(key, None)
