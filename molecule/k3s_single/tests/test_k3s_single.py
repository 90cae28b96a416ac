"""Verify a single k3s server. The k3s binary is the k3s STAND-IN (tests/standins/k3s)
served as a fake release; what is checked is what the role did with it."""
import os
import stat

import yaml

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
VERSION = "v1.36.4+k3s1"  # the role's default k3s_version
NODE = "k3s-mol-single"


def release_sha256(version):
    with open(os.path.join(EPHEMERAL, "k3s-release", "www", version, "sha256sum-amd64.txt")) as f:
        return dict(reversed(line.split()) for line in f)["k3s"]


def controller_token():
    with open(os.path.join(EPHEMERAL, "credentials", "k3s-token")) as f:
        return f.read().strip()


def test_binary_is_the_verified_release(host):
    binary = host.file("/usr/local/bin/k3s")
    assert binary.mode == 0o755 and binary.user == "root"
    assert binary.sha256sum == release_sha256(VERSION)
    assert VERSION in host.check_output("/usr/local/bin/k3s --version")


def test_unit_enabled_and_running(host):
    service = host.service("k3s.service")
    assert service.is_enabled and service.is_running
    assert not host.file("/etc/systemd/system/k3s-agent.service").exists


def test_server_config(host):
    config = host.file("/etc/rancher/k3s/config.yaml")
    assert config.mode == 0o600
    data = yaml.safe_load(config.content_string)
    assert data["node-name"] == NODE
    assert data["token-file"] == "/etc/rancher/k3s/token"
    assert data["write-kubeconfig-mode"] == "0600"
    assert NODE in data["tls-san"]
    # One server: no embedded etcd, nothing to join.
    assert "cluster-init" not in data and "server" not in data and "token" not in data


def test_token_file_private_and_never_exposed(host):
    token = controller_token()
    assert len(token) == 64
    token_file = host.file("/etc/rancher/k3s/token")
    assert token_file.mode == 0o600 and token_file.user == "root"
    assert token_file.content_string.strip() == token
    assert token not in host.check_output("ps -eo args")
    for path in ("/etc/systemd/system/k3s.service", "/etc/systemd/system/k3s.service.env",
                 "/etc/rancher/k3s/config.yaml"):
        assert token not in host.file(path).content_string, path
    assert host.file("/etc/systemd/system/k3s.service.env").mode == 0o600
    unit = host.file("/etc/systemd/system/k3s.service").content_string
    assert "--token" not in unit and "K3S_TOKEN" not in unit


def test_controller_credentials_private():
    directory = os.path.join(EPHEMERAL, "credentials")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for name in ("k3s-token", "kubeconfig.yaml"):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600, name


def test_kubeconfig_points_at_the_endpoint():
    with open(os.path.join(EPHEMERAL, "credentials", "kubeconfig.yaml")) as f:
        kubeconfig = yaml.safe_load(f)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://%s:6443" % NODE
    assert kubeconfig["users"][0]["user"]["client-key-data"]


def test_started_once(host):
    # converge, idempotence and check ran: a rerun with nothing changed restarts nothing.
    starts = host.file("/var/lib/rancher/k3s/standin/starts.log").content_string.splitlines()
    assert len(starts) == 1


def test_container_tuning_persisted_not_applied(host):
    # A container cannot set the kernel's sysctls: the role writes the files for the
    # container host and leaves /proc/sys alone (k3s_host_tuning: auto).
    assert "net.ipv4.ip_forward=1" in host.file("/etc/sysctl.d/90-k3s.conf").content_string.replace(" ", "")
    assert host.file("/etc/modules-load.d/k3s.conf").content_string.split() == ["br_netfilter", "overlay"]


def test_check_mode_on_converged_host_changes_nothing():
    # `ansible-playbook --check --diff` of the converge playbook: no failure, no change.
    import subprocess
    import sys

    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--check", "--diff",
         "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), check=False)
    recap = result.stdout[result.stdout.rfind("PLAY RECAP"):]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "changed=0" in recap and "failed=0" in recap, recap
