"""Trained classifiers on disk, keyed by what they were learnt from, so a restart does not retrain.

Training is most of a warm start (the embeddings are cached already): ~3 s on the 34-entry
sample shop, minutes at 10,000 entries. The key covers the phrasings (entry, language, kind,
text), the encoders, the training settings and the scikit-learn version (the character
vectorizer is a pickled scikit-learn object). The files are kefu's own, in `index_dir`, which is
as trusted as the FAQ folder; one that cannot be read is logged and trained again.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from knowledge.embeddings import text_key
from knowledge.index_folders import write_atomically
from knowledge.semantic import TRAINING_SETTINGS, Phrasing, TrainedModels

log = logging.getLogger(__name__)

VERSION = 2  # bump when what is stored changes
KEEP = 8  # cached versions kept (an FAQ edited often would otherwise fill the disk: ~16 MB each at 3,000 entries)


def classifier_key(phrasings: Sequence[Phrasing], encoder_ids: Sequence[str]) -> str:
    """What the classifiers depend on."""
    parts = [f"v{VERSION}", f"sklearn{version('scikit-learn')}", *encoder_ids,
             TRAINING_SETTINGS]
    parts += [f"{p.entry_id}\x1f{p.language}\x1f{p.kind}\x1f{p.text}" for p in phrasings]
    return text_key("\x1e".join(parts))


def load_trained(folder: Path, key: str) -> TrainedModels | None:
    """Blocking: the cached classifiers for this key, or None (not cached yet, or unreadable)."""
    path = folder / f"{key}.pkl"
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            trained = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        log.warning("search.classifier_cache_unreadable path=%s (%s): training again", path, exc)
        return None
    if not isinstance(trained, TrainedModels):
        log.warning("search.classifier_cache_unreadable path=%s (holds %s): training again", path,
                    type(trained).__name__)
        return None
    return trained


def save_trained(folder: Path, key: str, trained: TrainedModels) -> None:
    """Blocking: write the classifiers (atomically: other processes may share the folder) and prune."""
    path = folder / f"{key}.pkl"
    write_atomically(path, pickle.dumps(trained, protocol=pickle.HIGHEST_PROTOCOL))
    _prune(folder, keep=path)


def _prune(folder: Path, keep: Path) -> None:
    """Delete all but the KEEP newest cached versions (a process still reading one keeps its open file)."""
    cached = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime if p.exists() else 0.0, reverse=True)
    for old in [p for p in cached if p != keep][KEEP - 1:]:
        try:
            old.unlink()
        except FileNotFoundError:  # another process pruned it first
            pass
