"""The MLflow image is in k3s's containerd (namespace k8s.io) on every node, pinned,
under an immutable tag, and runs as the non-root user.

The nodes run the k3s STAND-IN (tests/standins/k3s): `k3s ctr` there is the real ctr
against a real containerd on k3s's socket, which is what this role talks to.
"""
import os
import re
import uuid

import pytest

testinfra_hosts = ["k3s_cluster"]

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
PINNED = "io.cri-containerd.pinned=pinned"
UID = "10001"


def _ref(n):
    with open(os.path.join(EPHEMERAL, "image-ref-%d.txt" % n)) as f:
        return f.read().strip()


FIRST = _ref(0)  # converge
SECOND = _ref(1)  # side_effect: one build input changed
THIRD = _ref(2)  # side_effect: another input changed, then the prune
_runs = {}


def _images(host):
    out = host.check_output("k3s ctr -n k8s.io images ls")
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return {row[0]: row for row in rows}


def _run_in_image(host, ref):
    # ctr 1.6 replaces the image's entrypoint with the given args; the native
    # snapshotter because overlay on the container's overlay root is refused.
    key = (host.backend.hostname, ref)
    if key not in _runs:
        name = "mlflowimg-verify-" + uuid.uuid4().hex[:8]
        _runs[key] = host.run(
            "k3s ctr -n k8s.io run --rm --snapshotter native %s %s "
            "/bin/sh -c 'id -u; id -g; mlflow server --help'" % (ref, name))
    return _runs[key]


@pytest.mark.parametrize("ref", [FIRST, SECOND])
def test_tag_is_immutable_not_latest(ref):
    name, tag = ref.rsplit(":", 1)
    assert name == "localhost/mlflow-k3s-molecule/mlflow"
    assert tag != "latest"
    assert re.fullmatch(r"3\.17\.2-[0-9a-f]{12}", tag), tag


def test_changed_input_gives_a_new_tag():
    assert len({FIRST, SECOND, THIRD}) == 3


def test_prune_keeps_the_current_and_the_previous_image_only(host):
    images = _images(host)
    assert FIRST not in images, sorted(images)
    kept = {images[ref][2] for ref in (SECOND, THIRD)}
    # Only the kept images' ID refs are left (the first one's went with its name).
    assert {row[2] for key, row in images.items() if key.startswith("sha256:")} == kept, images
    history = host.file("/var/lib/homelab-mlflow-image/history").content_string.split()
    assert history[0::2] == [SECOND, THIRD], history


@pytest.mark.parametrize("ref", [SECOND, THIRD])
def test_image_is_imported_in_k8s_namespace_and_pinned(host, ref):
    images = _images(host)
    assert ref in images, sorted(images)
    named = images[ref]
    assert PINNED in named[-1], named
    # The kubelet finds images by ID: the ID ref must point at the same manifest, pinned too.
    by_id = [row for key, row in images.items() if key.startswith("sha256:") and row[2] == named[2]]
    assert by_id, images
    assert all(PINNED in row[-1] for row in by_id), by_id


def test_image_is_not_in_default_namespace(host):
    out = host.check_output("k3s ctr -n default images ls -q")
    assert FIRST not in out.split()


def test_image_runs_as_non_root(host):
    result = _run_in_image(host, SECOND)
    assert result.rc == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == UID and lines[1] == UID, lines[:2]


def test_mlflow_server_help_runs(host):
    result = _run_in_image(host, SECOND)
    assert result.rc == 0, result.stderr
    assert "Run the MLflow tracking server" in result.stdout


def test_no_tarball_left_on_the_node(host):
    leftovers = host.check_output("find /var/lib/homelab-mlflow-image -maxdepth 1 -name '*.tar*'")
    assert leftovers == ""


def test_containerd_refuses_an_image_of_another_architecture(host):
    """The role imports with --platform linux/<the node's arch>: real containerd then refuses an
    image built for another architecture (here arm64 on these amd64 nodes) instead of storing
    one whose every pod would die with `exec format error`."""
    import io
    import tarfile

    import docker

    client = docker.from_env()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY f /f\n"), ("f", b"arm64\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ref = "localhost/mlflowimg-verify/foreign:%s" % uuid.uuid4().hex[:8]
    image = client.images.build(fileobj=io.BytesIO(context.getvalue()), custom_context=True,
                                tag=ref, platform="linux/arm64", rm=True)[0]
    try:
        assert image.attrs["Architecture"] == "arm64"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            data = b"".join(client.images.get(ref).save())
            info = tarfile.TarInfo("foreign.tar")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        client.containers.get(host.backend.hostname).put_archive("/tmp", archive.getvalue())
        result = host.run("k3s ctr -n k8s.io images import --platform linux/amd64 /tmp/foreign.tar")
        assert result.rc != 0 and "filtered out" in result.stderr, (result.rc, result.stdout, result.stderr)
        assert ref not in _images(host)
    finally:
        client.images.remove(ref, force=True)
        host.run("rm -f /tmp/foreign.tar")
