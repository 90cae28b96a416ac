"""The systemd host image boots systemd as PID 1 and Ansible manages services in it."""


def test_pid1_is_systemd(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_system_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


def test_probe_service_enabled_and_running(host):
    svc = host.service("molecule-probe.service")
    assert svc.is_enabled
    assert svc.is_running
    assert host.process.filter(comm="sleep", args="/bin/sleep infinity")
