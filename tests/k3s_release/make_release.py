"""Lay out fake k3s "releases" the way the k3s GitHub releases are laid out.

TEST HELPER: the binaries are the k3s STAND-IN (tests/standins/k3s), not k3s.
Usage: make_release.py OUT_DIR VERSION [VERSION ...] [--corrupt VERSION]

OUT_DIR/<version>/{k3s,k3s-arm64,k3s-armhf,k3s-s390x} and sha256sum-<arch>.txt;
@VERSION@ in the stand-in is replaced, so two versions differ in checksum. A
--corrupt version publishes a checksum file that does not match its binary.
"""
import argparse
import hashlib
import os

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "standins", "k3s")
ASSETS = {"amd64": "k3s", "arm64": "k3s-arm64", "arm": "k3s-armhf", "s390x": "k3s-s390x"}


def make(out_dir, version, corrupt=False):
    release = os.path.join(out_dir, version)
    os.makedirs(release, exist_ok=True)
    with open(STANDIN) as f:
        body = f.read().replace("@VERSION@", version).encode()
    digest = hashlib.sha256(body).hexdigest()
    if corrupt:
        digest = hashlib.sha256(body + b"tampered").hexdigest()
    for arch, name in ASSETS.items():
        path = os.path.join(release, name)
        with open(path, "wb") as f:
            f.write(body)
        os.chmod(path, 0o755)
        images = "k3s-airgap-images-%s.tar.zst" % arch
        with open(os.path.join(release, "sha256sum-%s.txt" % arch), "w") as f:
            # Same shape as the real file: other assets listed around the binary.
            f.write("%s  %s\n" % (hashlib.sha256(images.encode()).hexdigest(), images))
            f.write("%s  %s\n" % (digest, name))
    return digest


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--corrupt", action="append", default=[])
    args = parser.parse_args()
    for version in args.versions:
        print(version, make(args.out_dir, version, corrupt=version in args.corrupt))


if __name__ == "__main__":
    main()
