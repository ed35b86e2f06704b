"""Checkpoint fetching: path or URL, cache, SHA-256, key mapping, clear errors."""

import hashlib

import pytest
import torch
from torch import nn

from lit3d.models.weights import (
    WeightsError,
    fetch_weights,
    load_weights,
    match_by_order,
    read_state_dict,
)


def small_net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    net = small_net()
    path = tmp_path / "src" / "net-abc.pth"
    path.parent.mkdir()
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return net, path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_url_is_downloaded_once_into_the_cache_and_verified(checkpoint, tmp_path):
    net, path, digest = checkpoint
    cache = tmp_path / "cache"
    got = fetch_weights(path.as_uri(), sha256=digest, cache=cache, progress=False)
    assert got == cache / "net-abc.pth" and got.read_bytes() == path.read_bytes()
    path.unlink()  # the source is gone: the cached copy is used
    assert fetch_weights(path.as_uri(), sha256=digest[:8], cache=cache) == got
    assert list(cache.iterdir()) == [got]  # no partial files left behind


def test_wrong_checksum_is_refused_and_not_cached(checkpoint, tmp_path):
    _, path, _ = checkpoint
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="checksum mismatch"):
        fetch_weights(path.as_uri(), sha256="0" * 64, cache=cache, progress=False)
    assert not any(cache.iterdir())
    with pytest.raises(WeightsError, match="checksum mismatch"):
        fetch_weights(path, sha256="deadbeef")


def test_a_verified_file_is_hashed_once_per_process_until_it_changes(checkpoint, monkeypatch):
    """Two uses of one unchanged file read it once; a file changed since (size or modification
    time) is read again and its new content refused."""
    import os

    from lit3d.models import weights

    _, path, digest = checkpoint
    reads = []
    original = weights.sha256_of
    monkeypatch.setattr(weights, "sha256_of", lambda p: reads.append(p) or original(p))
    assert fetch_weights(path, sha256=digest) == path
    assert fetch_weights(path, sha256=digest) == path
    assert len(reads) == 1
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, new content
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        fetch_weights(path, sha256=digest)
    assert len(reads) == 2


def test_unreachable_url_and_missing_file_name_the_remedy(tmp_path):
    with pytest.raises(WeightsError, match="pass its local path as `weights:`"):
        fetch_weights("http://127.0.0.1:9/resnet.pth", cache=tmp_path, progress=False)
    with pytest.raises(WeightsError, match="not found"):
        fetch_weights(tmp_path / "missing.pth")


def test_load_weights_unwraps_state_dict_and_strips_module_prefix(checkpoint):
    net, path, digest = checkpoint
    fresh = load_weights(small_net(), path, sha256=digest)
    for a, b in zip(fresh.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


def test_match_by_order_renames_and_checks_shapes(checkpoint):
    net, path, _ = checkpoint
    renamed = {f"other{i}": v for i, v in enumerate(read_state_dict(path).values())}
    fresh = small_net()
    fresh.load_state_dict(match_by_order(renamed, fresh))
    x = torch.randn(5, 3)
    assert torch.equal(fresh(x), net(x))
    with pytest.raises(WeightsError, match="does not fit"):
        match_by_order(renamed, nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)))


def test_broken_or_mismatched_checkpoints_raise_weights_error(tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not read"):
        read_state_dict(broken)
    other = tmp_path / "other.pth"
    torch.save(nn.Linear(7, 7).state_dict(), other)
    with pytest.raises(WeightsError, match="do not fit"):
        load_weights(small_net(), other)
