"""Verify a server and an agent. The k3s binary is the k3s STAND-IN
(tests/standins/k3s) served as fake releases; what is checked is what the role did."""
import json
import os

import pytest
import yaml

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
VERSION_A = "v1.36.3+k3s1"
SERVER, AGENT = "k3s-mol-server1", "k3s-mol-agent1"
SERVER_ONLY = {"tls-san", "write-kubeconfig-mode", "disable", "cluster-init", "https-listen-port"}

testinfra_hosts = [SERVER, AGENT]


def release_sha256(version):
    with open(os.path.join(EPHEMERAL, "k3s-release", "www", version, "sha256sum-amd64.txt")) as f:
        return dict(reversed(line.split()) for line in f)["k3s"]


def starts(host):
    log = host.file("/var/lib/rancher/k3s/standin/starts.log").content_string
    return [json.loads(line) for line in log.splitlines()]


def is_server(host):
    return host.backend.get_hostname() == SERVER


def test_binary_is_the_verified_release(host):
    # The server's copy came from the controller, the agent downloaded its own.
    assert host.file("/usr/local/bin/k3s").sha256sum == release_sha256(VERSION_A)


def test_unit_enabled_and_running(host):
    unit, other = ("k3s.service", "k3s-agent.service") if is_server(host) else ("k3s-agent.service", "k3s.service")
    assert host.service(unit).is_enabled and host.service(unit).is_running
    assert not host.file("/etc/systemd/system/" + other).exists
    mode = "server" if is_server(host) else "agent"
    assert host.file("/etc/systemd/system/" + unit).contains("ExecStart=/usr/local/bin/k3s %s$" % mode)


def test_config_split_between_server_and_agent(host):
    data = yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)
    assert data["token-file"] == "/etc/rancher/k3s/token" and "token" not in data
    assert data["kubelet-arg"] == ["max-pods=50"]  # k3s_config reaches every node
    if is_server(host):
        assert data["node-name"] == SERVER
        assert data["disable"] == ["traefik"]
        assert SERVER in data["tls-san"]
        assert "server" not in data and "cluster-init" not in data  # first and only server
        assert "node-label" not in data
    else:
        assert data["node-name"] == AGENT
        assert data["server"] == "https://%s:6443" % SERVER
        assert data["node-label"] == ["homelab.example/role=worker"]
        assert not SERVER_ONLY & set(data), "server-only settings reached the agent"


def credential(name):
    with open(os.path.join(EPHEMERAL, "credentials", name)) as f:
        return f.read().strip()


def test_servers_hold_the_server_token_and_agents_only_the_agent_token(host):
    token, agent_token = credential("k3s-token"), credential("k3s-agent-token")
    assert token != agent_token
    token_file = host.file("/etc/rancher/k3s/token")
    assert token_file.mode == 0o600
    if is_server(host):
        assert token_file.content_string.strip() == token
        agent_file = host.file("/etc/rancher/k3s/agent-token")
        assert agent_file.mode == 0o600 and agent_file.content_string.strip() == agent_token
        config = yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)
        assert config["agent-token-file"] == "/etc/rancher/k3s/agent-token"
    else:
        assert token_file.content_string.strip() == agent_token
        # root on an agent cannot join as a server: the server token is nowhere on it
        found = host.run("grep -rlF -- %s /etc /var/lib/rancher /run 2>/dev/null" % token).stdout
        assert found == "", found
    assert token not in host.check_output("ps -eo args") and agent_token not in host.check_output("ps -eo args")
    unit = "k3s.service" if is_server(host) else "k3s-agent.service"
    for path in ("/etc/systemd/system/" + unit, "/etc/systemd/system/%s.env" % unit, "/etc/rancher/k3s/config.yaml"):
        content = host.file(path).content_string
        assert token not in content and agent_token not in content, path


def test_environment_file(host):
    unit = "k3s.service" if is_server(host) else "k3s-agent.service"
    env = host.file("/etc/systemd/system/%s.env" % unit)
    assert env.mode == 0o600 and env.contains('^K3S_STANDIN_READY_DELAY="2"$')


def test_started_once_server_before_agent(host):
    assert len(starts(host)) == 1  # the idempotence run restarted nothing
    if not is_server(host):
        server = host.get_host("ansible://" + SERVER, ansible_inventory=host.backend.ansible_inventory)
        # The agent started only after the server reported READY (2 s after its start).
        assert starts(host)[0]["time"] >= starts(server)[0]["time"] + 2


def test_kubeconfig_on_controller():
    path = os.path.join(EPHEMERAL, "credentials", "kubeconfig.yaml")
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path) as f:
        assert yaml.safe_load(f)["clusters"][0]["cluster"]["server"] == "https://%s:6443" % SERVER


@pytest.mark.parametrize("unused", [None])
def test_agent_has_no_kubeconfig(host, unused):
    if not is_server(host):
        assert not host.file("/etc/rancher/k3s/k3s.yaml").exists
